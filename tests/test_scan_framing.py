"""The byte-stream framer: any chunking, noise, over-long lines, prefixes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubagent.scanning.framing import Frame, FrameRejected, Framer


def frames(results: list) -> list[bytes]:
    return [r.data for r in results if isinstance(r, Frame)]


def test_single_and_multiple_codes_in_one_chunk() -> None:
    f = Framer(terminator=b"\r")
    assert frames(f.feed(b"4006381333931\rABC-1\r")) == [b"4006381333931", b"ABC-1"]


def test_code_split_across_chunks_with_crlf_split_in_middle() -> None:
    f = Framer(terminator=b"\r\n")
    out = f.feed(b"HA:BI") + f.feed(b"N:A-01\r") + f.feed(b"\nNEXT\r\n")
    assert frames(out) == [b"HA:BIN:A-01", b"NEXT"]


def test_empty_lines_and_stray_line_feeds_are_ignored() -> None:
    f = Framer(terminator=b"\r")
    # A scanner sending \r\n while we expect \r leaves a \n at each start.
    assert f.feed(b"\r\r\nA123\r\nB456\r\n\r") == [Frame(b"A123"), Frame(b"B456")]


def test_noise_is_removed_but_gs1_separator_kept() -> None:
    f = Framer(terminator=b"\n")
    out = f.feed(b"\x00\x00]C1010950600013435210AB\x1d17250131\x07\n\x00\x00\x00\n")
    assert frames(out) == [b"]C1010950600013435210AB\x1d17250131"]
    assert f.noise_bytes == 6


def test_prefix_and_suffix_stripped_when_present_only() -> None:
    f = Framer(prefix=b"STX", suffix=b"ETX", terminator=b"\t")
    assert frames(f.feed(b"STXabcETX\tplain\t")) == [b"abc", b"plain"]


def test_over_long_line_rejected_once_then_resync_at_next_terminator() -> None:
    f = Framer(terminator=b"\r", max_length=10)
    out = f.feed(b"X" * 30)
    assert out == [FrameRejected("too_long", out[0].detail)]
    assert f.feed(b"Y" * 30) == []  # still the same line: no second rejection
    assert frames(f.feed(b"tail\rGOOD\r")) == [b"GOOD"]


def test_over_long_complete_line_rejected() -> None:
    f = Framer(terminator=b"\r", max_length=5)
    out = f.feed(b"123456\r12345\r")
    assert isinstance(out[0], FrameRejected) and out[0].reason == "too_long"
    assert frames(out) == [b"12345"]


def test_overflow_keeps_partial_crlf_terminator() -> None:
    f = Framer(terminator=b"\r\n", max_length=8)
    out = f.feed(b"Z" * 20 + b"\r")
    assert [r.reason for r in out] == ["too_long"]
    assert frames(f.feed(b"\nOK1\r\n")) == [b"OK1"]


def test_bad_construction_is_refused() -> None:
    with pytest.raises(ValueError):
        Framer(terminator=b"")
    with pytest.raises(ValueError):
        Framer(max_length=0)


@settings(max_examples=60, deadline=None)
@given(codes=st.lists(st.binary(min_size=1, max_size=20).map(
           lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F) or b"x"), min_size=1, max_size=8),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10))
def test_any_chunking_gives_the_same_frames(codes: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(c + b"\r\n" for c in codes)
    f = Framer(terminator=b"\r\n", max_length=64)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    out: list = []
    for a, b in zip(points, points[1:]):
        out += f.feed(stream[a:b])
    assert frames(out) == [c.strip(b" ") for c in codes if c.strip(b" ")]
