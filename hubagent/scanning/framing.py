"""Split a scanner's byte stream into codes.

A serial scanner sends ``[prefix] code [suffix] terminator`` and nothing
marks the start of a code, so the framer is the only thing that knows where
one read ends. It is pure (no I/O, no clock) and incremental: feed it chunks
exactly as ``read()`` returned them, in any split.

Rules:

* a frame ends at the terminator; a lone ``\\r`` or ``\\n`` left over from a
  scanner that sends ``\\r\\n`` while configured for one of them is ignored;
* control bytes other than GS (0x1D, the GS1 FNC1 separator), RS (0x1E) and
  EOT (0x04) (ISO/IEC 15434 envelopes) are line noise and removed;
* empty frames (after noise removal) are ignored, silently;
* a frame longer than ``max_length`` is rejected once as ``too_long`` and the
  framer discards bytes until the next terminator (resynchronises);
* prefix and suffix are removed when present; a frame without them is still
  delivered (scanners are often reconfigured by hand).
"""

from __future__ import annotations

import msgspec


_KEEP_CONTROL = frozenset(b"\x04\x1d\x1e")
"""Control bytes that carry meaning inside codes (GS1 / ISO 15434)."""

_NOISE = bytes(b for b in range(32) if b not in _KEEP_CONTROL) + b"\x7f"
"""Bytes removed from every frame."""


class Frame(msgspec.Struct, frozen=True):
    """One complete code, framing removed."""

    data: bytes


class FrameRejected(msgspec.Struct, frozen=True):
    """Bytes that could not be framed; ``reason`` is stable (``too_long``)."""

    reason: str
    detail: str = ""


FrameResult = Frame | FrameRejected


class Framer:
    """Incremental framer for ``[prefix] code [suffix] terminator`` streams."""

    def __init__(self, prefix: bytes = b"", suffix: bytes = b"",
                 terminator: bytes = b"\r", max_length: int = 512) -> None:
        """Build a framer; ``max_length`` bounds the code without prefix/suffix."""
        if not terminator:
            raise ValueError("terminator must not be empty")
        if max_length < 1:
            raise ValueError("max_length must be positive")
        self._prefix = prefix
        self._suffix = suffix
        self._terminator = terminator
        self._max_length = max_length
        # Room for the framing itself and some noise before we give up on a line.
        self._limit = max_length + len(prefix) + len(suffix) + len(terminator)
        self._buffer = bytearray()
        self._discarding = False
        self.noise_bytes = 0
        """How many noise bytes were removed so far (for status/diagnostics)."""

    def reset(self) -> None:
        """Forget any partial frame (after the port was reopened)."""
        self._buffer.clear()
        self._discarding = False

    def feed(self, chunk: bytes) -> list[FrameResult]:
        """Add ``chunk`` and return every frame it completed, in order."""
        self._buffer += chunk
        results: list[FrameResult] = []
        while True:
            end = self._buffer.find(self._terminator)
            if end < 0:
                break
            line = bytes(self._buffer[:end])
            del self._buffer[: end + len(self._terminator)]
            if self._discarding:
                # The tail of an over-long line that was already reported.
                self._discarding = False
                continue
            result = self._frame(line)
            if result is not None:
                results.append(result)
        if len(self._buffer) > self._limit:
            results.extend(self._overflow())
        return results

    def _overflow(self) -> list[FrameResult]:
        """Drop a partial line that can no longer be valid."""
        size = len(self._buffer)
        # Keep a possible partial terminator ("\r" of "\r\n") for the next chunk.
        keep = len(self._terminator) - 1
        tail = bytes(self._buffer[-keep:]) if keep else b""
        self._buffer[:] = tail
        if self._discarding:
            return []
        self._discarding = True
        return [FrameRejected("too_long", f"more than {self._max_length} bytes ({size}+) without terminator")]

    def _frame(self, line: bytes) -> FrameResult | None:
        """Clean one terminated line into a frame, a rejection or nothing."""
        cleaned = line.translate(None, _NOISE)
        self.noise_bytes += len(line) - len(cleaned)
        cleaned = cleaned.strip(b" ")
        if self._prefix and cleaned.startswith(self._prefix):
            cleaned = cleaned[len(self._prefix):]
        if self._suffix and cleaned.endswith(self._suffix):
            cleaned = cleaned[: -len(self._suffix)]
        if not cleaned:
            return None
        if len(cleaned) > self._max_length:
            return FrameRejected("too_long", f"{len(cleaned)} bytes, limit {self._max_length}")
        return Frame(cleaned)
