"""The shelf-scanning feature: wires the scan service into the app.

Installs the ``RawScan``/``ScanRejectedAtDevice`` handlers, the commands
``delivery.expect``, ``pick.request`` and ``scanner.mode``, the ``scanning``
status section, and sets ``app.scanning`` (other features call
``app.scanning.staff_for(scanner)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubagent import registry
from hubagent.events import RawScan, ScanRejectedAtDevice
from hubagent.scanning.commands import ScanCommands
from hubagent.scanning.service import ScanService

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.config import Config


def install(app: "App") -> None:
    """Add the scan service to the app."""
    svc = ScanService(app, clock=app.clock)
    app.on(RawScan, svc.on_raw)
    app.on(ScanRejectedAtDevice, svc.on_device_reject)
    app.on_start(svc.load)
    ScanCommands(app, svc.set_mode).install()
    app.add_status("scanning", svc.status)
    app.scanning = svc


def check_feedback_devices(cfg: "Config") -> None:
    """Cross-check: a scanner's ``feedback`` must name a configured feedback device."""
    known = {d.name for d in cfg.devices_of("feedback")}
    for d in cfg.devices_of("scanners"):
        name = getattr(d.settings, "feedback", None)
        if name is not None and name not in known:
            have = ", ".join(sorted(known)) or "none configured"
            raise ValueError(f"scanners.{d.name}.feedback: no [feedback.{name}] device ({have})")


def check_camera_decoders(cfg: "Config") -> None:
    """Cross-check: ``decoder = "zxing"`` needs zxing-cpp (the ``datamatrix`` extra)."""
    for d in cfg.devices_of("scanners"):
        if getattr(d.settings, "decoder", None) == "zxing" and not registry.installed("zxingcpp"):
            raise ValueError(f"scanners.{d.name}.decoder: decoder 'zxing' needs module zxingcpp "
                             "from the extra 'datamatrix' (pip install 'hubagent[datamatrix]')")
