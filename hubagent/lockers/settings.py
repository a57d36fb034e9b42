"""Settings for locker banks and code keypads.

Imported while the configuration is checked, so it must not import any
hardware library (no gpiozero, no evdev): pin specs are normalised here by
a small table of the 40-pin header instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import msgspec

from hubagent.feature import Section

PinSpec = int | str
"""A gpiozero pin spec: BCM number (17) or a name ("GPIO17", "BCM17", "BOARD11", "J8:11")."""

CompartmentName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,16}$")]
"""Compartment names appear on labels and in MQTT topics: short and plain."""

# Physical pin of the 40-pin header -> BCM GPIO number (every Pi since the B+).
_BOARD_TO_BCM: dict[int, int] = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23,
    18: 24, 19: 10, 21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5,
    31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}
_MAX_BCM = 27  # GPIO0..27 are the ones brought out on the header.
_BCM_RE = re.compile(r"^(?:GPIO|BCM)?(\d{1,2})$", re.IGNORECASE)
_BOARD_RE = re.compile(r"^(?:BOARD|J8:)(\d{1,2})$", re.IGNORECASE)


def normalise_pin(spec: object) -> str:
    """Canonical ``"GPIO<n>"`` name of a pin spec; ValueError if it is not one.

    Two specs name the same pin exactly when their canonical names are equal
    (``17``, ``"BCM17"`` and ``"BOARD11"`` all give ``"GPIO17"``).
    """
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise ValueError(f"pin {spec!r} is not a pin number or name")
    if isinstance(spec, int):
        bcm = spec
    elif match := _BCM_RE.match(spec.strip()):
        bcm = int(match.group(1))
    elif match := _BOARD_RE.match(spec.strip()):
        board = int(match.group(1))
        if board not in _BOARD_TO_BCM:
            raise ValueError(f"pin {spec!r} is a power or ground pin, not a GPIO")
        bcm = _BOARD_TO_BCM[board]
    else:
        raise ValueError(f"pin {spec!r} is not a pin name (use 17, 'GPIO17' or 'BOARD11')")
    if not 0 <= bcm <= _MAX_BCM:
        raise ValueError(f"pin {spec!r} is out of range (GPIO0..GPIO{_MAX_BCM})")
    return f"GPIO{bcm}"


class CompartmentSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """One compartment: a lock relay output, a door switch input, an optional occupancy input."""

    # GPIO driving the lock relay (BCM number or "GPIO17"/"BOARD11").
    lock_pin: PinSpec
    # True when the relay energises on a high output; false for active-low relay boards.
    lock_active_high: bool = True
    # Longest time the lock is energised per pulse; solenoids burn out if held on.
    pulse_s: Annotated[float, msgspec.Meta(gt=0.0, le=3.0)] = 0.6
    # GPIO reading the door reed switch.
    door_pin: PinSpec
    # Use the SoC's internal pull-up (true) or pull-down (false) on the door input.
    door_pull_up: bool = True
    # Pin level that means "door open" (with a pull-up and a switch closed by the magnet: "high").
    door_open_when: Literal["high", "low"] = "high"
    # The door input must be steady this long before a change is reported.
    debounce_s: Annotated[float, msgspec.Meta(ge=0.005, le=1.0)] = 0.05
    # Compartment size, matched against parcel size when allocating.
    size: Literal["S", "M", "L"] = "M"
    # Optional GPIO of an occupancy sensor (IR beam or weight switch); none if absent.
    occupancy_pin: PinSpec | None = None
    # Pin level that means "occupied" (the occupancy input uses the internal pull-up).
    occupied_when: Literal["high", "low"] = "low"
    # A chilled compartment: only parcel.assign with "temperature": "chilled" lands here, and only here.
    chilled: bool = False

    def pins(self) -> dict[str, str]:
        """Canonical pin per role (``lock_pin``, ``door_pin``, ``occupancy_pin`` if set).

        Raises ValueError naming the role when a spec is not a GPIO pin. The
        bank validates this (and duplicates) so messages can name the
        compartment, which msgspec's error path leaves out.
        """
        specs = {"lock_pin": self.lock_pin, "door_pin": self.door_pin,
                 "occupancy_pin": self.occupancy_pin}
        return {role: _named_pin(role, spec) for role, spec in specs.items() if spec is not None}


class GpioLockerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A locker bank: compartments sharing one lock power supply (one pulse at a time)."""

    # The compartments of this bank by name (letters, digits, "-", "_"; at most 16 characters).
    compartments: Annotated[dict[CompartmentName, CompartmentSettings], msgspec.Meta(min_length=1)]
    # A door open longer than this raises a "door_open_too_long" alarm event.
    door_open_limit_s: Annotated[float, msgspec.Meta(ge=1.0, le=86400.0)] = 60.0
    # gpiozero pin factory by name; unset uses gpiozero's default (lgpio on a Raspberry Pi 5).
    pin_factory: Literal["lgpio", "rpigpio", "native", "mock"] | None = None
    # Seconds between attempts to open the pins when they could not be opened.
    retry_s: Annotated[float, msgspec.Meta(ge=0.1, le=600.0)] = 5.0

    def __post_init__(self) -> None:
        """Reject a pin used twice in this bank, naming both users."""
        _check_users(self.pin_users("compartment "))

    def pin_users(self, prefix: str = "") -> Iterable[tuple[str, str]]:
        """Pairs of (user, canonical pin), a user being ``<prefix><compartment>.<role>``."""
        for name, comp in self.compartments.items():
            try:
                pins = comp.pins()
            except ValueError as e:
                raise ValueError(f"compartment {name} {e}") from None
            for role, pin in pins.items():
                yield f"{prefix}{name}.{role}", pin


def _check_users(users: Iterable[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for user, pin in users:
        if pin in seen:
            raise ValueError(f"{pin} is used by both {seen[pin]} and {user}")
        seen[pin] = user


def _other_users(other_pins: Mapping[str, object]) -> Iterable[tuple[str, str]]:
    for user, spec in other_pins.items():
        if spec is None:
            continue
        if isinstance(spec, list | tuple | set | frozenset):
            for index, item in enumerate(spec):
                yield f"{user}[{index}]", _named_pin(user, item)
        else:
            yield user, _named_pin(user, spec)


def _named_pin(user: str, spec: object) -> str:
    try:
        return normalise_pin(spec)
    except ValueError as e:
        raise ValueError(f"{user}: {e}") from None


def check_pin_conflicts(banks: Mapping[str, GpioLockerSettings],
                        other_pins: Mapping[str, object]) -> None:
    """Raise ValueError naming the two users of any pin claimed twice.

    ``banks`` are the configured locker banks by name; ``other_pins`` maps
    every other GPIO user (``"feedback.shelf.buzzer_pin"``) to a pin spec, a
    list of pin specs, or None. Users are reported as
    ``lockers.<bank>.<compartment>.<role>``.
    """
    users: list[tuple[str, str]] = []
    for bank_name, bank in banks.items():
        users.extend(bank.pin_users(f"lockers.{bank_name}."))
    users.extend(_other_users(other_pins))
    _check_users(users)


class HidKeypadSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A USB keypad or touchscreen keyboard read through the Linux input layer."""

    # Input device path; prefer the stable /dev/input/by-id/...-event-kbd link.
    device: str
    # Keyboard layout the keypad types in (keypad digits are the same in every layout).
    layout: Literal["us", "uk", "de", "fr"] = "us"
    # Take the device exclusively so keystrokes never reach a console or login prompt.
    grab: bool = True
    # Longest entry accepted; a longer one is dropped whole at the terminator.
    max_length: Annotated[int, msgspec.Meta(ge=4, le=64)] = 16
    # Key that ends a code ("enter" accepts both Enter and keypad Enter).
    terminator: Literal["enter", "tab"] = "enter"
    # Digits typed and then left this long are dropped, so the next person starts clean.
    idle_reset_s: Annotated[float, msgspec.Meta(ge=1.0, le=600.0)] = 15.0
    # Seconds between attempts to reopen an unplugged keypad.
    retry_s: Annotated[float, msgspec.Meta(ge=0.1, le=600.0)] = 2.0
    # Name of the [feedback.NAME] device that tells the person what their code did; none if absent.
    feedback: str | None = None


class SimKeypadSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A simulated keypad: codes arrive through ``hubagent sim code``."""

    # Longest code the simulator accepts, as on a real keypad.
    max_length: Annotated[int, msgspec.Meta(ge=4, le=64)] = 16
    # Name of the [feedback.NAME] device that tells the person what their code did; none if absent.
    feedback: str | None = None


def feedback_of(settings: object) -> str | None:
    """The feedback device a keypad's settings name, or None (also for any other settings)."""
    if isinstance(settings, HidKeypadSettings | SimKeypadSettings):
        return settings.feedback
    return None


Seconds = Annotated[float, msgspec.Meta(gt=0.0, le=31_536_000.0)]


class LockerPolicySettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[locker_policy]``: how codes, lock-outs, alarms and expiry behave.

    The per-hub code secret is looked up as described in
    :func:`hubagent.lockers.codes.load_secret`: a systemd credential first,
    then an environment variable, then a 0600 file in the state directory.
    """

    # systemd credential (and state-dir file) name of the per-hub code secret.
    secret_name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "hubagent-code-secret"
    # Environment variable holding the secret as hex; empty disables this source.
    secret_env: str = "HUBAGENT_CODE_SECRET"
    # Create a random secret file in the state directory when none is found (sim/first boot);
    # production hubs set false and provision a systemd credential (LoadCredentialEncrypted=).
    create_secret: bool = True
    # Digits of the pickup codes the hub generates ("pickup": "generate").
    code_length: Annotated[int, msgspec.Meta(ge=4, le=12)] = 6
    # Pickup deadline after storing when central's parcel.assign gives no expires_at.
    pickup_expiry_s: Seconds = 3 * 86400.0
    # Validity of a return code when return.expect gives no expires_at.
    return_expiry_s: Seconds = 14 * 86400.0
    # Seconds between checks for expired parcels, returns and codes.
    expiry_check_s: Annotated[float, msgspec.Meta(ge=0.2, le=3600.0)] = 30.0
    # Expiry runs only while the wall clock reads this year or later (a Pi without RTC boots in 1970).
    min_sane_year: Annotated[int, msgspec.Meta(ge=2020, le=2100)] = 2024
    # A start whose wall clock is this far past the last trusted time is suspect until NTP or central confirm it.
    clock_max_offline_s: Annotated[float, msgspec.Meta(ge=3600.0, le=31_536_000.0)] = 30 * 86400.0
    # A wall-clock jump larger than this (against the monotonic clock) is suspect; also central's allowed offset.
    clock_jump_tolerance_s: Annotated[float, msgspec.Meta(ge=1.0, le=86400.0)] = 300.0
    # Wrong codes allowed per input device (keypad, scanner) before it is locked out.
    max_failures: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    # First lock-out; each further one doubles, up to max_lockout_s.
    base_lockout_s: Annotated[float, msgspec.Meta(gt=0.0, le=86400.0)] = 30.0
    # Longest lock-out: a lock-out always ends, so valid codes get through eventually.
    max_lockout_s: Annotated[float, msgspec.Meta(gt=0.0, le=86400.0)] = 900.0
    # Failures are forgotten after this long without one (occasional typos do not add up).
    forget_after_s: Annotated[float, msgspec.Meta(gt=0.0, le=604800.0)] = 3600.0
    # Door open longer than this raises door_open_too_long; unset uses the bank's door_open_limit_s.
    door_open_limit_s: Annotated[float, msgspec.Meta(ge=1.0, le=86400.0)] | None = None
    # After a release the door must move within this, else a "lock_failed" alarm (and the release is undone).
    lock_confirm_s: Annotated[float, msgspec.Meta(ge=0.5, le=60.0)] = 3.0
    # How long a release waits for a busy bank (another lock pulsing) before it is given up.
    busy_wait_s: Annotated[float, msgspec.Meta(ge=0.5, le=60.0)] = 10.0
    # Which stored items staff may take out: "expired" (expired parcels and dropped returns) or "any".
    staff_retrieval: Literal["expired", "any"] = "expired"
    # Central's Ed25519 public key for signed pickup tokens (HA:TOK:...): base64 of the 32 raw bytes,
    # or the path of a PEM or base64 file; unset refuses every token ("tokens_off").
    token_public_key: str | None = None
    # A load (parcel scan) opens a door only after a courier or staff member signed in at that input.
    load_requires_sign_in: bool = False
    # A courier's sign-in ends this long after their last scan or sign-in.
    courier_session_s: Annotated[float, msgspec.Meta(ge=10.0, le=86400.0)] = 900.0
    # Print every assigned parcel's HA:PCL label (as if parcel.assign said "label": true).
    print_parcel_labels: bool = False

    def __post_init__(self) -> None:
        """The lock-out limits must fit together (see AttemptLimiter)."""
        if self.base_lockout_s > self.max_lockout_s:
            raise ValueError("base_lockout_s must not exceed max_lockout_s")
        if self.forget_after_s < self.max_lockout_s:
            raise ValueError("forget_after_s must be at least max_lockout_s")


LOCKER_POLICY = Section("locker_policy", LockerPolicySettings)
"""The ``[locker_policy]`` section."""
