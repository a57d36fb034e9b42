"""Locker tables: compartments, parcels, returns, code hashes, the audit trail.

Codes are stored only as keyed hashes (:mod:`hubagent.lockers.codes`); the
audit trail is append-only, enforced by triggers that abort any UPDATE or
DELETE of its rows, so not even a bug in the hub can rewrite history.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "lockers-0001-tables",
        """
        -- One row per configured compartment. ``state`` is the life-cycle
        -- state (hubagent.lockers.state); while a release is pending it is an
        -- in-flight state and ``prior`` is where an interrupted or failed
        -- release returns to.
        CREATE TABLE locker_compartments (
            bank        TEXT NOT NULL,
            compartment TEXT NOT NULL,
            size        TEXT NOT NULL,
            state       TEXT NOT NULL DEFAULT 'free',
            prior       TEXT,
            item_kind   TEXT CHECK (item_kind IN ('parcel', 'return')),
            item_id     TEXT,
            release_id  INTEGER,
            release_ref TEXT,
            released_at TEXT,
            door_moved  INTEGER NOT NULL DEFAULT 0,
            fault       TEXT,
            updated_at  TEXT NOT NULL,
            PRIMARY KEY (bank, compartment)
        );
        CREATE TABLE locker_parcels (
            id          TEXT PRIMARY KEY,
            size        TEXT NOT NULL,
            state       TEXT NOT NULL,
            bank        TEXT,
            compartment TEXT,
            expires_at  TEXT,
            generate    INTEGER NOT NULL DEFAULT 0,
            assigned_by TEXT,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        );
        CREATE TABLE locker_returns (
            id          TEXT PRIMARY KEY,
            size        TEXT NOT NULL,
            state       TEXT NOT NULL,
            bank        TEXT,
            compartment TEXT,
            expires_at  TEXT,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        );
        -- HMAC-SHA256(secret, purpose || code) only; never the code.
        CREATE TABLE locker_codes (
            id          INTEGER PRIMARY KEY,
            hash        TEXT NOT NULL,
            purpose     TEXT NOT NULL CHECK (purpose IN ('pickup', 'staff', 'return')),
            ref         TEXT NOT NULL,
            expires_at  TEXT,
            spent_at    TEXT,
            spent_why   TEXT,
            created_at  TEXT NOT NULL
        );
        -- Two live codes with the same hash would open each other's compartments.
        CREATE UNIQUE INDEX locker_codes_live ON locker_codes(purpose, hash) WHERE spent_at IS NULL;
        CREATE INDEX locker_codes_ref ON locker_codes(purpose, ref);
        CREATE TABLE locker_audit (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            at          TEXT NOT NULL,
            kind        TEXT NOT NULL,
            bank        TEXT,
            compartment TEXT,
            ref         TEXT,
            source      TEXT,
            detail      TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TRIGGER locker_audit_no_update BEFORE UPDATE ON locker_audit
        BEGIN
            SELECT RAISE(ABORT, 'locker_audit is append-only');
        END;
        CREATE TRIGGER locker_audit_no_delete BEFORE DELETE ON locker_audit
        BEGIN
            SELECT RAISE(ABORT, 'locker_audit is append-only');
        END;
        """,
    ),
    (
        "lockers-0002-staff-codes-to-registry",
        """
        -- Staff keypad codes given before the staff registry existed move
        -- into it (staff_members, created by the staff feature's migration,
        -- which runs first), hashes unchanged: same secret, same "staff" purpose.
        INSERT OR IGNORE INTO staff_members(id, code_hash, expires_at, updated_at)
            SELECT ref, hash, expires_at, created_at FROM locker_codes
            WHERE purpose = 'staff' AND spent_at IS NULL;
        UPDATE locker_codes SET spent_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), spent_why = 'moved'
            WHERE purpose = 'staff' AND spent_at IS NULL;
        """,
    ),
]

# Couriers, parcel barcodes, out-of-service and chilled compartments.
from hubagent.lockers.schema_couriers import MIGRATIONS as _COURIER_MIGRATIONS  # noqa: E402

MIGRATIONS.extend(_COURIER_MIGRATIONS)

# Signed pickup tokens and hub-computed deadlines (a wrong clock's decisions undone).
from hubagent.lockers.schema_recovery import MIGRATIONS as _RECOVERY_MIGRATIONS  # noqa: E402

MIGRATIONS.extend(_RECOVERY_MIGRATIONS)
