"""KeyDecoder fed with evdev InputEvents as a keyboard-wedge scanner sends them."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import pytest
from evdev import InputEvent
from evdev import ecodes as e

from hubagent.drivers.hid_scanner import HidScanner, KeyDecoder
from hubagent.errors import InputError
from hubagent.events import DeviceHealthChanged, Health
from hubagent.ports import DeviceEnv
from hubagent.scanning.settings import HidScannerSettings

SHIFT = e.KEY_LEFTSHIFT


def press(code: int, *mods: int) -> list[InputEvent]:
    """Events of one key stroke as the kernel reports them (with MSC_SCAN and SYN)."""
    events: list[InputEvent] = []
    for m in mods:
        events.append(InputEvent(0, 0, e.EV_KEY, m, 1))
    events += [InputEvent(0, 0, e.EV_MSC, e.MSC_SCAN, 0x70000 + code),
               InputEvent(0, 0, e.EV_KEY, code, 1), InputEvent(0, 0, e.EV_SYN, e.SYN_REPORT, 0),
               InputEvent(0, 0, e.EV_KEY, code, 0), InputEvent(0, 0, e.EV_SYN, e.SYN_REPORT, 0)]
    for m in reversed(mods):
        events.append(InputEvent(0, 0, e.EV_KEY, m, 0))
    return events


def strokes(*keys: int | tuple[int, ...]) -> list[InputEvent]:
    """Flatten key strokes; a tuple is (key, modifier, ...)."""
    out: list[InputEvent] = []
    for k in keys:
        out += press(k[0], *k[1:]) if isinstance(k, tuple) else press(k)
    return out


def decode(layout: str, events: list[InputEvent], max_length: int = 512) -> list[str]:
    decoder = KeyDecoder(layout, max_length)
    lines = []
    for ev in events:
        line = decoder.feed(ev.type, ev.code, ev.value)
        if line is not None:
            lines.append(line)
    return lines


# "Hello-123\n" typed by hand on each layout's physical keys.
HELLO = {
    "us": strokes((e.KEY_H, SHIFT), e.KEY_E, e.KEY_L, e.KEY_L, e.KEY_O, e.KEY_MINUS,
                  e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_ENTER),
    "uk": strokes((e.KEY_H, e.KEY_RIGHTSHIFT), e.KEY_E, e.KEY_L, e.KEY_L, e.KEY_O, e.KEY_MINUS,
                  e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_ENTER),
    "de": strokes((e.KEY_H, SHIFT), e.KEY_E, e.KEY_L, e.KEY_L, e.KEY_O, e.KEY_SLASH,
                  e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_KPENTER),
    "fr": strokes((e.KEY_H, SHIFT), e.KEY_E, e.KEY_L, e.KEY_L, e.KEY_O, e.KEY_6,
                  (e.KEY_1, SHIFT), (e.KEY_2, SHIFT), (e.KEY_3, SHIFT), e.KEY_ENTER),
}


@pytest.mark.parametrize("layout", sorted(HELLO))
def test_hello_123_on_every_layout(layout: str) -> None:
    assert decode(layout, HELLO[layout]) == ["Hello-123"]


def test_same_keys_mean_different_text_per_layout() -> None:
    keys = strokes((e.KEY_Z, SHIFT), e.KEY_Y, e.KEY_SLASH, (e.KEY_2, SHIFT), e.KEY_ENTER)
    assert decode("us", keys) == ["Zy/@"]
    assert decode("de", keys) == ["Yz-\""]
    assert decode("uk", keys) == ["Zy/\""]


def test_german_altgr_and_umlauts() -> None:
    keys = strokes((e.KEY_Q, e.KEY_RIGHTALT), e.KEY_SEMICOLON, (e.KEY_APOSTROPHE, SHIFT),
                   e.KEY_MINUS, e.KEY_ENTER)
    assert decode("de", keys) == ["@öÄß"]


def test_internal_code_on_german_layout() -> None:
    # "HA:BIN:A-01": ":" is Shift+"." and "-" is the "/" key position on QWERTZ.
    keys = strokes((e.KEY_H, SHIFT), (e.KEY_A, SHIFT), (e.KEY_DOT, SHIFT), (e.KEY_B, SHIFT),
                   (e.KEY_I, SHIFT), (e.KEY_N, SHIFT), (e.KEY_DOT, SHIFT), (e.KEY_A, SHIFT),
                   e.KEY_SLASH, e.KEY_0, e.KEY_1, e.KEY_ENTER)
    assert decode("de", keys) == ["HA:BIN:A-01"]


def test_caps_lock_affects_letters_only_and_shift_inverts_it() -> None:
    keys = strokes(e.KEY_CAPSLOCK, e.KEY_A, (e.KEY_B, SHIFT), e.KEY_1, e.KEY_CAPSLOCK, e.KEY_C, e.KEY_ENTER)
    assert decode("us", keys) == ["Ab1c"]


def test_key_up_and_autorepeat_do_not_type() -> None:
    events = [InputEvent(0, 0, e.EV_KEY, e.KEY_A, 1), InputEvent(0, 0, e.EV_KEY, e.KEY_A, 2),
              InputEvent(0, 0, e.EV_KEY, e.KEY_A, 2), InputEvent(0, 0, e.EV_KEY, e.KEY_A, 0)]
    assert decode("us", events + strokes(e.KEY_ENTER)) == ["a"]


def test_ctrl_right_bracket_types_gs1_separator() -> None:
    keys = strokes(e.KEY_1, e.KEY_0, (e.KEY_RIGHTBRACE, e.KEY_LEFTCTRL), e.KEY_3, e.KEY_ENTER)
    assert decode("us", keys) == ["10\x1d3"]


def test_empty_lines_are_ignored_and_unknown_keys_type_nothing() -> None:
    keys = strokes(e.KEY_ENTER, e.KEY_F1, e.KEY_X, e.KEY_ENTER)
    assert decode("us", keys) == ["x"]


def test_over_long_line_rejected_then_resyncs() -> None:
    decoder = KeyDecoder("us", max_length=3)
    for ev in strokes(e.KEY_A, e.KEY_B, e.KEY_C, e.KEY_D):
        assert decoder.feed(ev.type, ev.code, ev.value) is None
    enter = strokes(e.KEY_ENTER)
    with pytest.raises(InputError) as info:
        for ev in enter:
            decoder.feed(ev.type, ev.code, ev.value)
    assert info.value.code == "too_long"
    lines = [decoder.feed(ev.type, ev.code, ev.value) for ev in strokes(e.KEY_Z, e.KEY_ENTER)]
    assert [x for x in lines if x] == ["z"]


def test_unknown_layout_refused() -> None:
    with pytest.raises(ValueError):
        KeyDecoder("dvorak")


def test_absent_device_is_offline_and_close_is_prompt(tmp_path: Path) -> None:
    dev = HidScanner("wedge", HidScannerSettings(device=str(tmp_path / "event99")),
                     DeviceEnv("hub", tmp_path))
    q: queue.Queue = queue.Queue()
    dev.start(q.put)
    event = q.get(timeout=10)
    assert isinstance(event, DeviceHealthChanged) and event.status.health is Health.OFFLINE
    started = time.monotonic()
    dev.close()
    dev.close()
    assert time.monotonic() - started < 5.0
