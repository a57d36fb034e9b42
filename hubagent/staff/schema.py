"""The staff registry's table."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "staff-0001-registry",
        """
        -- One row per staff member central registered (staff.set). Codes,
        -- badges and PINs are stored only as keyed hashes (HMAC-SHA256 with
        -- the per-hub code secret), never as typed or printed.
        CREATE TABLE staff_members (
            id          TEXT PRIMARY KEY,
            code_hash   TEXT,
            badge_hash  TEXT,
            pin_hash    TEXT,
            expires_at  TEXT,
            revoked_at  TEXT,
            updated_at  TEXT NOT NULL,
            command     TEXT
        );
        -- Two live members with one code or badge would be each other.
        CREATE UNIQUE INDEX staff_members_code ON staff_members(code_hash)
            WHERE revoked_at IS NULL AND code_hash IS NOT NULL;
        CREATE UNIQUE INDEX staff_members_badge ON staff_members(badge_hash)
            WHERE revoked_at IS NULL AND badge_hash IS NOT NULL;
        """,
    ),
]
"""The registry's table (the lockers move their older staff codes into it)."""
