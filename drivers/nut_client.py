"""A small synchronous client for the NUT (Network UPS Tools) network protocol.

Why our own: PyNUTClient (from the NUT project) is built on ``telnetlib``,
which Python 3.13 removed, and ``nut2`` has been unmaintained since 2019;
``aionut`` is asyncio-only while our power source is one blocking thread.
The protocol is line based over TCP (port 3493): one command per line,
multi-word values in double quotes with ``\\"`` and ``\\\\`` escapes,
errors as ``ERR <CODE> [extra]``. Only the read side is implemented:
``LIST VAR``, ``GET VAR``, ``USERNAME``/``PASSWORD``, ``LOGOUT``.

Every socket operation has a timeout; a reply that does not follow the
protocol raises :class:`NutProtocolError` instead of being guessed at.
"""

from __future__ import annotations

import logging
import socket
from types import TracebackType

from hubagent.errors import DeviceError, DeviceUnavailable

log = logging.getLogger(__name__)

MAX_LINE = 4096
"""Longest reply line accepted; upsd's own limit is far below this."""
MAX_LIST = 10_000
"""Most lines accepted in one LIST reply, so a broken server cannot grow us forever."""


class NutError(DeviceError):
    """Base of this client's errors."""


class NutConnectionError(NutError, DeviceUnavailable):
    """The server could not be reached, or the connection broke or timed out."""


class NutProtocolError(NutError):
    """The server answered something this client does not understand.

    The connection is closed when this is raised: after a reply we could not
    parse we no longer know where the next reply starts.
    """


class NutServerError(NutError):
    """The server answered ``ERR <code>``; ``code`` is e.g. ``UNKNOWN-UPS``, ``DATA-STALE``."""

    def __init__(self, code: str, extra: str = "", command: str = "") -> None:
        self.code = code
        self.extra = extra
        self.command = command
        detail = f" ({extra})" if extra else ""
        super().__init__(f"NUT server refused {command or 'command'}: {code}{detail}")


def split_words(line: str) -> list[str]:
    """Split one protocol line into words, honouring double quotes and backslash escapes."""
    words: list[str] = []
    cur: list[str] = []
    in_word = in_quotes = False
    chars = iter(line)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, None)
            if nxt is None:
                raise NutProtocolError(f"dangling backslash in {line!r}")
            cur.append(nxt)
            in_word = True
        elif ch == '"':
            in_quotes = not in_quotes
            in_word = True  # "" is an empty word, not nothing
        elif ch in " \t" and not in_quotes:
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            cur.append(ch)
            in_word = True
    if in_quotes:
        raise NutProtocolError(f"unterminated quote in {line!r}")
    if in_word:
        words.append("".join(cur))
    return words


def quote(word: str) -> str:
    """Quote ``word`` for a command line; refuses characters that would end the line."""
    if any(c in word for c in "\r\n\0"):
        raise ValueError("NUT command words cannot contain line breaks or NUL")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class NutClient:
    """One connection to a upsd server. Not thread-safe: one owner thread.

    Use as a context manager or call :meth:`close`. ``connect()`` must be
    called before any command (the context manager does it).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 3493, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    # -- connection ---------------------------------------------------------

    def connect(self) -> None:
        """Open the TCP connection; raises NutConnectionError."""
        self.close()
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as e:
            raise NutConnectionError(f"cannot connect to {self.host}:{self.port}: {e}") from e
        self._buf = b""

    @property
    def connected(self) -> bool:
        """Whether a connection is open (it may still have been dropped by the peer)."""
        return self._sock is not None

    def close(self) -> None:
        """Close the connection without saying goodbye. Idempotent; never raises."""
        sock, self._sock = self._sock, None
        self._buf = b""
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> NutClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.logout()
        self.close()

    # -- commands -----------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        """Send USERNAME and PASSWORD; raises NutServerError (e.g. ACCESS-DENIED)."""
        self._expect_ok(f"USERNAME {quote(username)}", "USERNAME")
        # The label keeps the password out of every error message and log line.
        self._expect_ok(f"PASSWORD {quote(password)}", "PASSWORD")

    def logout(self) -> None:
        """Say goodbye and close; never raises (the server may already be gone)."""
        if self._sock is None:
            return
        try:
            self._send("LOGOUT")
            self._read_line()
        except NutError:
            pass
        finally:
            self.close()

    def get_var(self, ups: str, var: str) -> str:
        """The value of one variable (``GET VAR``)."""
        try:
            return self._get_var(ups, var)
        except NutProtocolError:
            self.close()
            raise

    def list_vars(self, ups: str) -> dict[str, str]:
        """All variables of ``ups`` (``LIST VAR``), by name."""
        try:
            return self._list_vars(ups)
        except NutProtocolError:
            self.close()
            raise

    def _get_var(self, ups: str, var: str) -> str:
        label = f"GET VAR {ups} {var}"
        self._send(f"GET VAR {quote(ups)} {quote(var)}")
        words = self._reply_words(label)
        if len(words) != 4 or words[0] != "VAR" or words[1] != ups or words[2] != var:
            raise NutProtocolError(f"unexpected reply to {label}: {words!r}")
        return words[3]

    def _list_vars(self, ups: str) -> dict[str, str]:
        label = f"LIST VAR {ups}"
        self._send(f"LIST VAR {quote(ups)}")
        begin = self._reply_words(label)
        if begin != ["BEGIN", "LIST", "VAR", ups]:
            raise NutProtocolError(f"unexpected start of reply to {label}: {begin!r}")
        out: dict[str, str] = {}
        for _ in range(MAX_LIST):
            words = self._reply_words(label)
            if words == ["END", "LIST", "VAR", ups]:
                return out
            if len(words) != 4 or words[0] != "VAR" or words[1] != ups:
                raise NutProtocolError(f"unexpected line in reply to {label}: {words!r}")
            out[words[2]] = words[3]
        raise NutProtocolError(f"reply to {label} exceeds {MAX_LIST} lines")

    # -- plumbing -----------------------------------------------------------

    def _expect_ok(self, line: str, label: str) -> None:
        self._send(line)
        words = self._reply_words(label)
        if not words or words[0] != "OK":
            self.close()
            raise NutProtocolError(f"unexpected reply to {label}: {words[:1]!r}")

    def _reply_words(self, label: str) -> list[str]:
        line = self._read_line()
        try:
            words = split_words(line)
        except NutProtocolError:
            self.close()
            raise
        if words and words[0] == "ERR":
            code = words[1] if len(words) > 1 else "UNKNOWN"
            raise NutServerError(code, " ".join(words[2:]), label)
        return words

    def _send(self, line: str) -> None:
        if self._sock is None:
            raise NutConnectionError("not connected")
        try:
            self._sock.sendall(line.encode("utf-8") + b"\n")
        except OSError as e:
            self.close()
            raise NutConnectionError(f"send to {self.host}:{self.port} failed: {e}") from e

    def _read_line(self) -> str:
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE:
                self.close()
                raise NutProtocolError(f"reply line longer than {MAX_LINE} bytes")
            if self._sock is None:
                raise NutConnectionError("not connected")
            try:
                chunk = self._sock.recv(4096)
            except OSError as e:  # socket.timeout is an OSError
                self.close()
                raise NutConnectionError(f"read from {self.host}:{self.port} failed: {e}") from e
            if not chunk:
                self.close()
                raise NutConnectionError(f"{self.host}:{self.port} closed the connection")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\n")
        if len(raw) > MAX_LINE:
            self.close()
            raise NutProtocolError(f"reply line longer than {MAX_LINE} bytes")
        return raw.decode("utf-8", errors="replace").rstrip("\r")
