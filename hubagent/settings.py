"""Typed settings of the core sections of the config file.

Each struct is one TOML table. Unknown keys are errors (a typo must not be
silently ignored on a hub nobody watches); every field has a default where
a sensible one exists. Device tables (``[scanners.NAME]`` ...) are typed by
their driver's own settings struct; see :mod:`hubagent.registry`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

HubId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Port = Annotated[int, Meta(ge=1, le=65535)]
Seconds = Annotated[float, Meta(gt=0, le=86400)]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base for config tables: unknown keys rejected, values immutable."""


class HubSettings(_Section, frozen=True):
    """``[hub]``: who this hub is and where it keeps its state."""

    # Unique id of this hub within the consortium; appears in every MQTT topic.
    id: HubId
    # Directory for the database, previews and the API socket.
    state_dir: str = "/var/lib/hubagent"
    # Log level: debug, info, warning or error.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The hub's time zone (IANA name): a KPI "day" and restock slots are local.
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"


class ApiSettings(_Section, frozen=True):
    """``[api]``: the local status/control API (a Unix socket)."""

    # Socket path; empty means "<state_dir>/api.sock".
    socket: str = ""


class TlsSettings(_Section, frozen=True):
    """``[mqtt.tls]``: TLS to the broker."""

    # CA certificate file that signed the broker's certificate.
    ca_file: str
    # Client certificate and key, when the broker authenticates hubs by certificate.
    cert_file: str | None = None
    key_file: str | None = None
    # Accept a broker certificate whose name does not match (testing only).
    insecure: bool = False


class MqttSettings(_Section, frozen=True):
    """``[mqtt]``: the link to central ops. Absent = offline mode."""

    # Broker host name or address.
    host: str
    # Broker port (8883 is usual with TLS).
    port: Port = 1883
    # Topic prefix; topics are "<prefix>/<hub id>/...".
    prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")] = "hubs"
    # MQTT protocol version: "5" (default) or "3.1.1".
    protocol: Literal["5", "3.1.1"] = "5"
    # Client id; empty means "hubagent-<hub id>" (must be stable for a persistent session).
    client_id: str = ""
    # Keep-alive interval in seconds.
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    # How long the broker keeps this hub's session while it is away (MQTT v5).
    session_expiry_s: Annotated[int, Meta(ge=0, le=4294967295)] = 7 * 24 * 3600
    # User name for the broker, if it asks for one.
    username: str | None = None
    # systemd credential name holding the broker password (preferred).
    password_credential: str | None = None
    # Environment variable holding the broker password (fallback).
    password_env: str | None = None
    # TLS settings; absent means plain TCP.
    tls: TlsSettings | None = None
    # Reconnect backoff: first and largest delay, in seconds; each wait is
    # random in [d/2, d] (see docs/operations.md, "Reconnecting").
    reconnect_min_s: Seconds = 0.5
    reconnect_max_s: Seconds = 1.5
    # Unacknowledged events are sent again after at most this long (sooner when
    # the measured round trip shows a loss).
    ack_timeout_s: Seconds = 30.0
    # Publishes on the wire without a PUBACK (the hub hands paho up to 2x this).
    inflight: Annotated[int, Meta(ge=1, le=1000)] = 32
    # Commands the broker may send before the hub PUBACKs them (MQTT 5 Receive
    # Maximum). A command is PUBACKed once its group commits, so this bounds how
    # many commands share one commit; under 3.1.1 the broker's own limit applies.
    receive_maximum: Annotated[int, Meta(ge=1, le=65535)] = 100
    # Most events out without central's ack. Mosquitto's default max_queued_messages is 1000:
    # raise this only together with the broker's queue for central's client.
    max_unacked: Annotated[int, Meta(ge=10, le=1_000_000)] = 1000
    # Seconds between telemetry messages.
    telemetry_s: Seconds = 60.0
    # Alert mqtt:unreachable when the hub has had no connection for this long.
    unreachable_alert_s: Seconds = 60.0
    # Alert mqtt:unacked when the broker takes events but central acknowledges none for this long.
    unacked_alert_s: Seconds = 120.0
    # Largest command payload accepted, in bytes.
    max_payload: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024


class StoreSettings(_Section, frozen=True):
    """``[store]``: the local SQLite database."""

    # File name inside the state directory.
    file: Annotated[str, Meta(pattern=r"^[^/]+$")] = "hubagent.db"
    # Acknowledged events kept for events.replay before they are pruned.
    keep_acked_events: Annotated[int, Meta(ge=0)] = 50_000
    # How long a command id is remembered, so a repeat gets the first reply and
    # no second effect. Never shorter than [mqtt] session_expiry_s.
    inbox_keep_s: Annotated[int, Meta(ge=3600)] = 7 * 24 * 3600
    # The newest command ids kept whatever the clock says.
    inbox_keep_min: Annotated[int, Meta(ge=100)] = 1000
    # A reserve file kept beside the database, given up when the disk fills so
    # the hub can still open its database and run degraded (KiB; 0 = none).
    reserve_kb: Annotated[int, Meta(ge=0, le=1024 * 1024)] = 4096
    # While the disk is full, how often free space is checked.
    space_check_s: Annotated[float, Meta(gt=0, le=3600)] = 15.0


class SimSettings(_Section, frozen=True):
    """``[sim]``: behaviour of the simulator backend."""

    # Record the power-off command instead of running it: always under --sim;
    # with a config file only when the power source is simulated.
    record_shutdown: bool = True
