"""The CodeInput port's contract, run on the simulator and on the HID keypad driver.

Rows: ``sim`` (SimKeypad through :meth:`enter`), ``hid-fake`` (HidKeypad
reading a stand-in for ``evdev.InputDevice`` backed by a real pipe, the seam
``tests/test_keypad.py`` uses on machines without ``/dev/uinput``), and
``hid-uinput`` (HidKeypad reading a real kernel input device created through
``/dev/uinput``, when HUBAGENT_CONTRACT_UINPUT names it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from evdev import ecodes

from contract_kit import Events, env_value, hardware_row, until
from fixtures_keyboard import FakeKeyboard
from hubagent.errors import HubError
from hubagent.events import CodeEntered, Event, Health
from hubagent.lockers.settings import HidKeypadSettings, SimKeypadSettings
from hubagent.ports import CodeInput, DeviceEnv

MAX_LENGTH = 8


def keys(code: str) -> list[str]:
    """The evdev key names that type ``code`` on a keypad, Enter included."""
    return [f"KEY_{c}" for c in code] + ["KEY_KPENTER"]


class KeypadRig:
    """One keypad implementation and the finger on its keys."""

    can_unplug = True

    def __init__(self, device: CodeInput) -> None:
        self.device = device

    def type(self, code: str) -> None:
        """Type ``code`` and press Enter."""
        raise NotImplementedError

    def unplug(self) -> None:
        """Pull the keypad's cable (it stays plugged in at its path for the reopen)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Close the keypad and its world."""
        self.device.close()


class SimRig(KeypadRig):
    """SimKeypad through its typed verbs: codes are entered whole."""

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.sim.keypad import SimKeypad

        self.sim = SimKeypad("door", SimKeypadSettings(max_length=MAX_LENGTH), env)
        super().__init__(self.sim)

    def type(self, code: str) -> None:
        self.sim.enter(code)

    def unplug(self) -> None:
        self.sim.unplug()
        self.sim.replug()


def hid_settings(path: Path) -> HidKeypadSettings:
    return msgspec.convert({"device": str(path), "retry_s": 0.1, "max_length": MAX_LENGTH},
                           HidKeypadSettings, strict=True)


class FakeRig(KeypadRig):
    """HidKeypad on the pipe-backed keyboard stand-in."""

    def __init__(self, env: DeviceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        import evdev

        from hubagent.drivers.hid_keypad import HidKeypad

        monkeypatch.setattr(evdev, "InputDevice", FakeKeyboard)
        FakeKeyboard.opened = []
        path = env.state_dir / "event-kbd"
        path.touch()
        super().__init__(HidKeypad("door", hid_settings(path), env))

    @staticmethod
    def _keyboard() -> FakeKeyboard:
        """The keyboard the driver has open (it reports OK only once it has one)."""
        if not FakeKeyboard.opened or FakeKeyboard.opened[-1].closed:
            raise OSError("the keypad driver has no keyboard open")
        return FakeKeyboard.opened[-1]

    def type(self, code: str) -> None:
        self._keyboard().type(keys(code))

    def unplug(self) -> None:
        self._keyboard().unplug()


class UinputRig(KeypadRig):
    """HidKeypad on a virtual keyboard made through /dev/uinput, reached through a symlink."""

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.drivers.hid_keypad import HidKeypad

        self.link = env.state_dir / "keypad-event"
        self.ui: Any = None
        self._plug()
        super().__init__(HidKeypad("door", hid_settings(self.link), env))

    def _plug(self) -> None:
        from evdev import UInput

        wanted = [getattr(ecodes, k) for k in keys("0123456789")] + [ecodes.KEY_ENTER]
        self.ui = UInput({ecodes.EV_KEY: wanted}, name="hubagent contract keypad", devnode=env_value("uinput"))
        tmp = self.link.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.ui.device.path)
        tmp.replace(self.link)

    def type(self, code: str) -> None:
        for name in keys(code):
            for value in (1, 0):
                self.ui.write(ecodes.EV_KEY, getattr(ecodes, name), value)
                self.ui.syn()

    def unplug(self) -> None:
        self.ui.close()
        self._plug()  # plugged in again at once: the driver finds it at the same path

    def cleanup(self) -> None:
        super().cleanup()
        self.ui.close()


@pytest.fixture(params=["sim", "hid-fake", hardware_row("hid-uinput", "uinput")])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeypadRig]:
    """Each keypad implementation in turn, not started."""
    env = DeviceEnv("hub-contract", tmp_path)
    made: KeypadRig
    if request.param == "sim":
        made = SimRig(env)
    elif request.param == "hid-fake":
        made = FakeRig(env, request.getfixturevalue("monkeypatch"))
    else:
        made = UinputRig(env)
    try:
        yield made
    finally:
        made.cleanup()


def started(rig: KeypadRig) -> Events:
    events = Events()
    rig.device.start(events)
    until(lambda: rig.device.status().health is Health.OK, "health OK")
    return events


def is_code(event: Event) -> bool:
    return isinstance(event, CodeEntered)


def test_each_code_arrives_once_in_order(rig: KeypadRig) -> None:
    events = started(rig)
    for code in ("482913", "0042", "7"):
        rig.type(code)
    got = [events.next(is_code, "a code") for _ in range(3)]
    assert [(c.source, c.code) for c in got] == [("door", "482913"), ("door", "0042"), ("door", "7")]


def test_an_entry_longer_than_max_length_is_never_delivered(rig: KeypadRig) -> None:
    events = started(rig)
    with contextlib.suppress(HubError):  # a simulator refuses it outright; a keypad drops it
        rig.type("1" * (MAX_LENGTH + 4))
    rig.type("2468")
    assert events.next(is_code, "the next code").code == "2468"


def test_unplugging_is_reported_and_typing_works_again_once_back(rig: KeypadRig) -> None:
    if not rig.can_unplug:
        pytest.skip("the simulated keypad has no cable")
    events = started(rig)
    rig.unplug()
    events.health(Health.OFFLINE, Health.FAULTED)
    events.health(Health.OK)
    rig.type("1357")
    assert events.next(is_code, "a code after the replug").code == "1357"


def test_close_is_idempotent_reports_offline_and_ends_delivery(rig: KeypadRig) -> None:
    events = started(rig)
    rig.device.close()
    rig.device.close()
    assert rig.device.status().health is Health.OFFLINE
    with contextlib.suppress(HubError, OSError):  # nothing left to type into
        rig.type("9999")
    events.none(is_code, "a code after close")


def test_close_before_start_never_raises(rig: KeypadRig) -> None:
    rig.device.close()
    rig.device.close()
