"""The shelf-scanning feature: wires the scan service into the app.

Installs the ``RawScan``/``ScanRejectedAtDevice`` handlers, the commands
``delivery.expect``, ``pick.request`` and ``scanner.mode`` and the
``scanning`` status section; offers who is signed in on each scanner
(:class:`~hubagent.interfaces.StaffDirectory`), badges waiting for their PIN
(:class:`~hubagent.interfaces.BadgePins`) and the scan counts. Badges are
checked against the staff registry (:class:`~hubagent.interfaces.StaffRecords`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubagent import registry
from hubagent.events import RawScan, ScanRejectedAtDevice
from hubagent.feature import Built, Feature, Interfaces
from hubagent.scanning.commands import ScanCommands
from hubagent.scanning.schema import MIGRATIONS
from hubagent.scanning.service import ScanService
from hubagent.scanning.settings import SCANNING, CameraScannerSettings, ScannerSettings
from hubagent.staff.settings import STAFF

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock
    from hubagent.config import Config


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The scan service; shelf labels go to the label queue when there is one."""
    svc = ScanService(app, SCANNING.of(app.config), labels=uses.labels, clock=clock,
                      records=uses.staff_records, staff=STAFF.of(app.config))
    app.on(RawScan, svc.on_raw)
    app.on(ScanRejectedAtDevice, svc.on_device_reject)
    app.on_start(svc.load)
    ScanCommands(app, svc.set_mode).install()
    app.add_status("scanning", svc.status)
    return Built(svc, Interfaces(staff=svc, scan_counts=svc, badge_pins=svc))


def check_feedback_devices(cfg: "Config") -> None:
    """Cross-check: a scanner's ``feedback`` must name a configured feedback device."""
    known = {d.name for d in cfg.devices_of("feedback")}
    for d in cfg.devices_of("scanners"):
        name = d.settings.feedback if isinstance(d.settings, ScannerSettings) else None
        if name is not None and name not in known:
            have = ", ".join(sorted(known)) or "none configured"
            raise ValueError(f"scanners.{d.name}.feedback: no [feedback.{name}] device ({have})")


def check_camera_decoders(cfg: "Config") -> None:
    """Cross-check: ``decoder = "zxing"`` needs zxing-cpp (the ``datamatrix`` extra)."""
    for d in cfg.devices_of("scanners"):
        camera = d.settings if isinstance(d.settings, CameraScannerSettings) else None
        if camera is not None and camera.decoder == "zxing" and not registry.installed("zxingcpp"):
            raise ValueError(f"scanners.{d.name}.decoder: decoder 'zxing' needs module zxingcpp "
                             "from the extra 'datamatrix' (pip install 'hubagent[datamatrix]')")


FEATURE = Feature(
    "scanning", build,
    sections=(SCANNING,),
    migrations=tuple(MIGRATIONS),
    # a scanner's `feedback` names a configured feedback device; a zxing
    # camera decoder has its extra installed
    checks=(check_feedback_devices, check_camera_decoders),
)
