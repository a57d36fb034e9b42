"""Keypads: the HID key decoder, the HID driver without a device, and the simulated keypad."""

from __future__ import annotations

import queue
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
import evdev
from evdev import ecodes

from hubagent.drivers import hid_keypad
from hubagent.drivers.hid_keypad import HidKeypad, KeypadDecoder
from hubagent.drivers.hid_scanner import LAYOUTS
from hubagent.errors import CommandError, InputError
from hubagent.events import CodeEntered, DeviceHealthChanged, Event, Health
from hubagent.lockers.settings import HidKeypadSettings, SimKeypadSettings
from hubagent.ports import DeviceEnv, SimControl
from hubagent.sim.keypad import SimKeypad

from fixtures_keyboard import FakeKeyboard

ENV = DeviceEnv("hub-test", Path("/nonexistent"))
DOWN, UP, REPEAT = 1, 0, 2


def keys(decoder: KeypadDecoder, names: list[str], start: float = 0.0, step: float = 0.2) -> list[str]:
    """Press and release each key (evdev names, "+SHIFT" to hold Shift); the codes completed."""
    codes = []
    at = start
    for name in names:
        name, _, modifier = name.partition("+")
        events = [(getattr(ecodes, name), DOWN), (getattr(ecodes, name), UP)]
        if modifier:
            mod = getattr(ecodes, f"KEY_LEFT{modifier}")
            events = [(mod, DOWN), *events, (mod, UP)]
        for code, value in events:
            done = decoder.feed(ecodes.EV_KEY, code, value, at)
            decoder.feed(ecodes.EV_SYN, 0, 0, at)
            if done is not None:
                codes.append(done)
        at += step
    return codes


def digits(text: str) -> list[str]:
    return [f"KEY_{c}" for c in text]


def decoder(**kw: Any) -> KeypadDecoder:
    args: dict[str, Any] = {"layout": "us", "max_length": 16, "terminator": "enter", "idle_reset_s": 15.0}
    return KeypadDecoder(**(args | kw))


def test_our_key_codes_are_the_kernel_ones() -> None:
    assert (hid_keypad.KEY_ENTER, hid_keypad.KEY_KPENTER, hid_keypad.KEY_TAB) == (
        ecodes.KEY_ENTER, ecodes.KEY_KPENTER, ecodes.KEY_TAB)
    assert (hid_keypad.KEY_ESC, hid_keypad.KEY_BACKSPACE, hid_keypad.EV_KEY) == (
        ecodes.KEY_ESC, ecodes.KEY_BACKSPACE, ecodes.EV_KEY)


def test_settings_offer_exactly_the_decoder_layouts() -> None:
    offered = set(typing.get_args(typing.get_type_hints(HidKeypadSettings)["layout"]))
    assert offered == set(LAYOUTS)


def test_digits_then_enter_make_a_code() -> None:
    d = decoder()
    assert keys(d, digits("123456") + ["KEY_ENTER"]) == ["123456"]
    assert keys(d, [f"KEY_KP{c}" for c in "0987"] + ["KEY_KPENTER"]) == ["0987"]
    assert keys(d, ["KEY_ENTER"]) == []  # Enter alone is no code


def test_layout_is_honoured() -> None:
    # On a French AZERTY keyboard the top-row digits need Shift.
    assert keys(decoder(layout="fr"), ["KEY_1+SHIFT", "KEY_2+SHIFT", "KEY_KP3", "KEY_KP4", "KEY_ENTER"]) == ["1234"]


def test_escape_and_backspace_clear_and_autorepeat_types_nothing() -> None:
    d = decoder()
    assert keys(d, digits("999") + ["KEY_ESC"] + digits("42") + ["KEY_ENTER"]) == ["42"]
    assert keys(d, digits("129") + ["KEY_BACKSPACE"] + digits("3") + ["KEY_ENTER"]) == ["3"]
    d.feed(ecodes.EV_KEY, ecodes.KEY_7, DOWN, 100.0)
    for i in range(10):  # a key held down must not type itself
        d.feed(ecodes.EV_KEY, ecodes.KEY_7, REPEAT, 100.1 + i * 0.03)
    assert d.feed(ecodes.EV_KEY, ecodes.KEY_ENTER, DOWN, 101.0) == "7"


def test_tab_terminator() -> None:
    d = decoder(terminator="tab")
    assert keys(d, ["KEY_1", "KEY_2", "KEY_ENTER", "KEY_3", "KEY_4", "KEY_TAB"]) == ["1234"]
    with pytest.raises(ValueError):
        decoder(terminator="space")


def test_abandoned_entry_is_dropped_after_idle_time() -> None:
    d = decoder()
    assert keys(d, digits("111"), start=0.0) == []
    # The next customer, a minute later, must not inherit the leftover digits.
    assert keys(d, digits("2222") + ["KEY_ENTER"], start=60.0) == ["2222"]


def test_overlong_entry_is_dropped_whole() -> None:
    d = decoder(max_length=6)
    assert keys(d, digits("12345678") + ["KEY_ENTER"]) == []
    assert d.rejected == 1
    assert keys(d, digits("123456") + ["KEY_ENTER"]) == ["123456"]


def test_hid_keypad_reads_grabs_and_survives_unplugging(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evdev, "InputDevice", FakeKeyboard)
    FakeKeyboard.opened = []
    path = tmp_path / "event-kbd"
    path.touch()
    settings = msgspec.convert({"device": str(path), "retry_s": 0.1}, HidKeypadSettings, strict=True)
    keypad = HidKeypad("door", settings, ENV)
    events: queue.Queue[Event] = queue.Queue()
    keypad.start(events.put)
    try:
        assert events.get(timeout=5.0).status.health is Health.OK  # type: ignore[union-attr]
        first = FakeKeyboard.opened[0]
        assert first.grabbed
        first.type(digits("4711") + ["KEY_KPENTER"])
        entered = events.get(timeout=5.0)
        assert isinstance(entered, CodeEntered) and (entered.source, entered.code) == ("door", "4711")
        first.unplug()
        offline = events.get(timeout=5.0)
        assert isinstance(offline, DeviceHealthChanged) and offline.status.health is Health.OFFLINE
        assert first.closed and not first.grabbed
        back = events.get(timeout=5.0)  # still plugged in at the path: reopened on retry
        assert isinstance(back, DeviceHealthChanged) and back.status.health is Health.OK
        FakeKeyboard.opened[-1].type(digits("99") + ["KEY_ENTER"])
        again = events.get(timeout=5.0)
        assert isinstance(again, CodeEntered) and again.code == "99"
    finally:
        keypad.close()
    assert FakeKeyboard.opened[-1].closed


@pytest.mark.parametrize("table", [{}, {"device": "/dev/input/event0", "max_length": 2},
                                   {"device": "/dev/input/event0", "terminator": "space"},
                                   {"device": "/dev/input/event0", "layout": "klingon"}])
def test_bad_keypad_settings(table: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(table, HidKeypadSettings, strict=True)


# -- simulated keypad ---------------------------------------------------------


def test_sim_keypad_emits_codes() -> None:
    keypad = SimKeypad("door", SimKeypadSettings(), ENV)
    assert isinstance(keypad, SimControl)
    events: list[Event] = []
    with pytest.raises(CommandError, match="not_started"):
        keypad.sim_command("code", {"code": "123456"})
    keypad.start(events.append)
    assert keypad.status().health is Health.OK
    assert keypad.sim_command("code", {"code": "123456"}) == {"source": "door", "code": "123456"}
    assert len(events) == 1 and isinstance(events[0], CodeEntered)
    assert (events[0].source, events[0].code) == ("door", "123456")
    keypad.close()
    keypad.close()
    assert keypad.status().health is Health.OFFLINE
    with pytest.raises(CommandError):
        keypad.sim_command("code", {"code": "123456"})


@pytest.mark.parametrize("verb, args, code", [
    ("beep", {"code": "1"}, "unknown_verb"),
    ("code", {}, "bad_args"),
    ("code", {"code": 123456}, "bad_args"),
    ("code", {"code": ""}, "bad_args"),
    ("code", {"code": "1" * 17}, "bad_code"),
    ("code", {"code": "12\n34"}, "bad_code"),
])
def test_sim_keypad_bad_commands(verb: str, args: dict[str, Any], code: str) -> None:
    keypad = SimKeypad("door", SimKeypadSettings(), ENV)
    events: list[Event] = []
    keypad.start(events.append)
    with pytest.raises(InputError) as err:
        keypad.sim_command(verb, args)
    assert err.value.code == code
    assert events == []
