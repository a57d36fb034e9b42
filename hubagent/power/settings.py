"""Settings of the power sources and of the ``[power_policy]`` section.

Imported while the configuration is checked, so this module imports no
hardware library. Every field's comment is its line in the config reference.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from hubagent.feature import Section

Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Pin = int | str
"""A gpiozero pin name: BCM number (17) or a name ("GPIO17", "BOARD11")."""

_ENV_NAME = r"^([A-Za-z_][A-Za-z0-9_]*)?$"


class NutPowerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A UPS read from a NUT ``upsd`` server over its network protocol."""

    # Host name or address of the upsd server.
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=253)] = "127.0.0.1"
    # TCP port of the upsd server.
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 3493
    # UPS name as configured in the server's ups.conf (the part before "@").
    ups: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\s\"]+$")]
    # User from upsd.users to log in as; empty means do not log in (read-only access).
    username: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[^\s\"]*$")] = ""
    # Name of the environment variable holding that user's password (never the password itself).
    password_env: Annotated[str, msgspec.Meta(max_length=128, pattern=_ENV_NAME)] = ""
    # Seconds between two polls of the server.
    poll_s: Annotated[float, msgspec.Meta(ge=0.1, le=300)] = 2.0
    # Send a reading at least every this many polls even when nothing changed.
    report_every_polls: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 30
    # Seconds to wait for the server to connect or answer before calling it unreachable.
    timeout_s: Annotated[float, msgspec.Meta(ge=0.1, le=120)] = 5.0
    # Longest wait in seconds between reconnection attempts (backoff doubles up to this).
    reconnect_max_s: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = 30.0

    def __post_init__(self) -> None:
        """Cross-field checks: a password needs a user, a user needs a password source."""
        if self.password_env and not self.username:
            raise ValueError("password_env is set but username is empty")
        if self.username and not self.password_env:
            raise ValueError("username is set but password_env is empty")


class GpioPowerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A UPS HAT signalling mains failure and low battery on GPIO pins."""

    # Pin that is active while mains power has failed (the UPS runs on battery).
    power_fail_pin: Pin
    # Whether the power-fail pin is active high (pulled down) rather than active low (pulled up).
    power_fail_active_high: bool = True
    # Pin that is active while the battery is low; omit if the HAT has none.
    low_battery_pin: Pin | None = None
    # Whether the low-battery pin is active high (pulled down) rather than active low (pulled up).
    low_battery_active_high: bool = True
    # Seconds a pin must stay still before a change counts (gpiozero bounce_time).
    debounce_s: Annotated[float, msgspec.Meta(ge=0, le=10)] = 0.05

    def __post_init__(self) -> None:
        """The two pins must differ."""
        if self.low_battery_pin is not None and self.low_battery_pin == self.power_fail_pin:
            raise ValueError("low_battery_pin must differ from power_fail_pin")


class SimPowerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A scripted UPS driven by ``hubagent sim power``; starts on mains."""

    # Battery charge in percent reported at start and on mains.
    charge: Percent = 100.0
    # Estimated battery runtime in seconds reported at start and on mains.
    runtime_s: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 1800.0
    # Mains voltage reported while on mains.
    input_voltage: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 230.0


class PowerPolicySettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The ``[power_policy]`` section: when to save data and power off."""

    # Shut down when on battery and the estimated runtime falls under this many seconds.
    low_runtime_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 300.0
    # Also shut down when on battery and the charge falls under this percentage; omit to ignore charge.
    low_charge_pct: Percent | None = None
    # Command (argument list, no shell) that powers the hub off.
    shutdown_command: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)] = ("systemctl", "poweroff")
    # Seconds allowed to stop work and flush data before the command runs.
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 20.0
    # Seconds the shutdown command itself may take before it is abandoned.
    command_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=600)] = 60.0
    # Camera frames per second while on battery, to save power; omit to leave the camera alone.
    camera_fps_on_battery: Annotated[float, msgspec.Meta(gt=0, le=120)] | None = None
    # Seconds a new power state (on battery, low, back on mains) must persist before acting on it.
    confirm_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 3.0

    def __post_init__(self) -> None:
        """The command must name a program."""
        if not self.shutdown_command[0].strip():
            raise ValueError("shutdown_command must start with a program name")


POWER_POLICY = Section("power_policy", PowerPolicySettings)
"""The ``[power_policy]`` section."""
