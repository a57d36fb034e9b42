"""``[web]``: the kiosk and staff pages (importable without the web extra)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

HOST_PORT = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$"
LANGUAGE = r"^[a-z]{2,3}(-[A-Z]{2})?$"


class WebSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[web]``: where the pages listen and how they behave."""

    # Address of the kiosk page (and of the staff page unless staff_listen is set).
    # Loopback by default: the kiosk is for a touchscreen on the hub itself.
    listen: Annotated[str, Meta(pattern=HOST_PORT)] = "127.0.0.1:8080"
    # A separate address for the staff page only, e.g. "0.0.0.0:8443" for the LAN.
    staff_listen: Annotated[str, Meta(pattern=HOST_PORT)] | None = None
    # TLS certificate and key (PEM files) for the staff listener.
    tls_cert: str | None = None
    tls_key: str | None = None
    # A staff session ends after this long without a request.
    session_idle_s: Annotated[float, Meta(ge=60, le=86400)] = 900.0
    # The kiosk returns to its start screen after this long without a touch.
    kiosk_idle_s: Annotated[float, Meta(ge=5, le=600)] = 45.0
    # The kiosk counts as this input device for lock-outs (like a keypad's name).
    kiosk_input: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")] = "kiosk"
    # Languages offered, first is the default; each needs a message catalogue.
    languages: tuple[Annotated[str, Meta(pattern=LANGUAGE)], ...] = ("en", "de", "fr")
    # A directory with extra or overriding catalogues (<lang>.toml).
    locale_dir: str | None = None
    # Where each locker bank is, shown under the door number ("left of the entrance").
    where: dict[str, Annotated[str, Meta(max_length=80)]] = {}

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_cert is not None and self.staff_listen is None:
            raise ValueError("TLS is for the staff listener: set staff_listen too")
        if not self.languages:
            raise ValueError("languages must name at least one language")


def split_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` -> ("127.0.0.1", 8080); IPv6 in brackets."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)
