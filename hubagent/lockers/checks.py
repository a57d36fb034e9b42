"""Config check across sections: no GPIO pin claimed by two devices.

Every locker bank's lock, door and occupancy pins, every feedback device's
buzzer/LED pins and every power source's signal pins are compared by their
canonical name (``17``, ``"GPIO17"`` and ``"BOARD11"`` are the same pin).
Simulated banks are included on purpose: the simulator config is a
template for a real one, so its pin map must be valid too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from hubagent.lockers.settings import LOCKER_POLICY, GpioLockerSettings, check_pin_conflicts, feedback_of

if TYPE_CHECKING:
    from hubagent.config import Config

_PIN_FIELDS = {
    "feedback": ("buzzer_pin", "ok_led_pin", "error_led_pin"),
    "power": ("power_fail_pin", "low_battery_pin"),
}


def check_gpio_pins(config: "Config") -> None:
    """Raise ValueError("dotted.key: reason") when two GPIO users share a pin."""
    banks = {d.name: d.settings for d in config.devices_of("lockers")
             if isinstance(d.settings, GpioLockerSettings)}
    others: dict[str, Any] = {}
    for role, fields in _PIN_FIELDS.items():
        for device in config.devices_of(role):
            values = msgspec.structs.asdict(device.settings)
            for field in fields:
                if field in values:
                    others[f"{role}.{device.name}.{field}"] = values[field]
    try:
        check_pin_conflicts(banks, others)
    except ValueError as e:
        # The loader splits "key: reason"; name the second user's key.
        message = str(e)
        if " is used by both " not in message:
            raise  # already "user: reason" (a spec that is not a GPIO pin)
        key = message.rsplit(" and ", 1)[-1]
        raise ValueError(f"{key}: {message}") from None


def check_parcel_labels(config: "Config") -> None:
    """``print_parcel_labels`` needs a printer to print on (else every assign would be refused)."""
    if LOCKER_POLICY.of(config).print_parcel_labels and not config.devices_of("printers"):
        raise ValueError("locker_policy.print_parcel_labels: parcel labels need a [printers.NAME] printer")


def check_token_key(config: "Config") -> None:
    """Raise ValueError("locker_policy.token_public_key: ...") when the key cannot be loaded."""
    if not config.devices_of("lockers"):
        return
    value = LOCKER_POLICY.of(config).token_public_key
    if not value:
        return
    from hubagent.lockers.tokens import load_public_key

    try:
        load_public_key(value)
    except ImportError:
        raise ValueError("locker_policy.token_public_key: needs the 'lockers' extra "
                         "(pip install 'hubagent[lockers]')") from None
    except ValueError as e:
        raise ValueError(f"locker_policy.token_public_key: {e}") from None


def check_keypad_feedback(config: "Config") -> None:
    """Raise ValueError("keypads.NAME.feedback: ...") when a keypad names no configured feedback device."""
    known = {d.name for d in config.devices_of("feedback")}
    for keypad in config.devices_of("keypads"):
        name = feedback_of(keypad.settings)
        if name is not None and name not in known:
            have = ", ".join(sorted(known)) or "none configured"
            raise ValueError(f"keypads.{keypad.name}.feedback: no [feedback.{name}] device ({have})")
