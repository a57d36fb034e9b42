"""The NUT protocol client against a real upsd and against misbehaving servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixtures_nut import NutServer  # the nut_server fixture comes from conftest
from hubagent.drivers.nut_client import (
    NutClient,
    NutConnectionError,
    NutProtocolError,
    NutServerError,
    quote,
    split_words,
)
from hubagent.errors import DeviceError, DeviceUnavailable


class ScriptedServer:
    """A one-connection TCP server that answers each command line with canned bytes."""

    def __init__(self, replies: list[bytes], hang_up: bool = False) -> None:
        self.replies = replies
        self.hang_up = hang_up
        self.received: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            f = conn.makefile("rb")
            for reply in self.replies:
                line = f.readline()
                if not line:
                    return
                self.received.append(line)
                if reply:
                    conn.sendall(reply)
            if self.hang_up:
                return
            # Then stay silent until the client gives up.
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[type[ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(replies: list[bytes], hang_up: bool = False) -> ScriptedServer:
        server = ScriptedServer(replies, hang_up)
        servers.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in servers:
        server.close()


# -- against the real upsd ---------------------------------------------------------


def test_real_upsd_values_errors_and_login(nut_server: NutServer) -> None:
    # One test per server start: upsd plus its driver take about 3 s to come up.
    with NutClient(nut_server.host, nut_server.port, timeout=2) as client:
        client.login(nut_server.username, nut_server.password)
        variables = client.list_vars(nut_server.ups)
        assert variables["ups.status"] == "OL"
        assert variables["battery.charge"] == "100"
        assert variables["device.mfr"] == "Dummy Manufacturer"  # a multi-word quoted value
        assert client.get_var(nut_server.ups, "battery.runtime") == "1800"

        with pytest.raises(NutServerError) as unknown_ups:
            client.list_vars("no-such-ups")
        assert unknown_ups.value.code == "UNKNOWN-UPS"
        with pytest.raises(NutServerError) as unknown_var:
            client.get_var(nut_server.ups, "no.such.var")
        assert unknown_var.value.code == "VAR-NOT-SUPPORTED"
        # The connection stays usable after an ERR reply.
        assert client.get_var(nut_server.ups, "ups.status") == "OL"

        with pytest.raises(NutServerError) as again:
            client.login(nut_server.username, nut_server.password)  # ALREADY-SET-USERNAME
        assert again.value.code.startswith("ALREADY-SET")
        assert nut_server.password not in str(again.value)
    assert not client.connected


# -- unreachable and misbehaving servers ------------------------------------------


def test_refused_connection() -> None:
    with socket.socket() as s:  # a port that is free right now, so nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NutConnectionError) as err:
        NutClient("127.0.0.1", port, timeout=1).connect()
    assert isinstance(err.value, DeviceUnavailable)


def test_not_connected_is_an_error() -> None:
    with pytest.raises(NutConnectionError):
        NutClient().get_var("ups", "ups.status")


def test_silent_server_times_out(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([])
    client = NutClient("127.0.0.1", server.port, timeout=0.3)
    client.connect()
    with pytest.raises(NutConnectionError, match="timed out"):
        client.get_var("ups", "ups.status")
    assert not client.connected


def test_server_hanging_up_mid_list(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([b'BEGIN LIST VAR u\nVAR u ups.status "OL"\n'], hang_up=True)
    client = NutClient("127.0.0.1", server.port, timeout=2)
    client.connect()
    with pytest.raises(NutConnectionError, match="closed the connection"):
        client.list_vars("u")
    assert not client.connected


@pytest.mark.parametrize(
    "reply",
    [
        b"HELLO THERE\n",  # not a VAR line
        b'VAR other ups.status "OL"\n',  # the wrong UPS
        b'VAR u ups.status "unterminated\n',
        b"VAR u ups.status OL trailing\n",
        b"\xff\xfe garbage \x00\n",
        b"A" * 5000 + b"\n",  # longer than any real reply
    ],
)
def test_garbage_replies_raise_protocol_error(scripted, reply: bytes) -> None:  # type: ignore[no-untyped-def]
    server = scripted([reply])
    client = NutClient("127.0.0.1", server.port, timeout=2)
    client.connect()
    with pytest.raises(NutProtocolError) as err:
        client.get_var("u", "ups.status")
    assert isinstance(err.value, DeviceError)
    assert not client.connected  # out of step with the server: dropped


def test_err_reply_carries_code_and_extra(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([b"ERR DATA-STALE some detail\n"])
    client = NutClient("127.0.0.1", server.port, timeout=2)
    client.connect()
    with pytest.raises(NutServerError) as err:
        client.list_vars("u")
    assert (err.value.code, err.value.extra) == ("DATA-STALE", "some detail")
    assert "DATA-STALE" in str(err.value)


def test_command_words_are_quoted(scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted([b'VAR "my\\"ups" battery.charge "87"\n'])
    client = NutClient("127.0.0.1", server.port, timeout=2)
    client.connect()
    assert client.get_var('my"ups', "battery.charge") == "87"
    assert server.received == [b'GET VAR "my\\"ups" "battery.charge"\n']


def test_line_breaks_in_words_are_refused() -> None:
    with pytest.raises(ValueError):
        quote("ups\nLOGOUT")


# -- word splitting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('VAR ups device.mfr "Dummy Manufacturer"', ["VAR", "ups", "device.mfr", "Dummy Manufacturer"]),
        ('VAR ups x ""', ["VAR", "ups", "x", ""]),
        ('VAR ups x "a \\"b\\" \\\\c"', ["VAR", "ups", "x", 'a "b" \\c']),
        ("  OK   Goodbye ", ["OK", "Goodbye"]),
        ("", []),
    ],
)
def test_split_words(line: str, words: list[str]) -> None:
    assert split_words(line) == words


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n\x00"), max_size=20), max_size=6))
def test_quote_then_split_round_trips(words: list[str]) -> None:
    assert split_words(" ".join(quote(w) for w in words)) == words
