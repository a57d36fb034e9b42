"""Locker tables for couriers: parcel barcodes, the courier registry, compartments out of service.

Kept apart from :mod:`hubagent.lockers.schema` (whose released migrations
are never edited); these are appended to its list as new named entries.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "lockers-0101-couriers",
        """
        -- The barcodes already on a parcel (carrier tracking number, SSCC),
        -- normalised (lockers/barcodes.py). Uniqueness among live parcels is
        -- checked at assign time against the parcel's state.
        CREATE TABLE locker_parcel_barcodes (
            code    TEXT NOT NULL,
            kind    TEXT NOT NULL CHECK (kind IN ('tracking', 'sscc')),
            parcel  TEXT NOT NULL,
            PRIMARY KEY (parcel, code)
        );
        CREATE INDEX locker_parcel_barcodes_code ON locker_parcel_barcodes(code);
        -- A parcel may ask for a chilled compartment.
        ALTER TABLE locker_parcels ADD COLUMN temperature TEXT NOT NULL DEFAULT 'ambient';
        -- Couriers registered by central; badge and code only as keyed hashes.
        CREATE TABLE locker_couriers (
            id          TEXT PRIMARY KEY,
            carrier     TEXT NOT NULL,
            badge_hash  TEXT,
            code_hash   TEXT,
            expires_at  TEXT,
            revoked_at  TEXT,
            updated_at  TEXT NOT NULL
        );
        CREATE UNIQUE INDEX locker_couriers_badge ON locker_couriers(badge_hash)
            WHERE badge_hash IS NOT NULL AND revoked_at IS NULL;
        CREATE UNIQUE INDEX locker_couriers_code ON locker_couriers(code_hash)
            WHERE code_hash IS NOT NULL AND revoked_at IS NULL;
        -- Compartments taken out of service (a row while out, deleted when back).
        CREATE TABLE locker_out_of_service (
            bank        TEXT NOT NULL,
            compartment TEXT NOT NULL,
            reason      TEXT NOT NULL,
            since       TEXT NOT NULL,
            by          TEXT,
            PRIMARY KEY (bank, compartment)
        );
        """,
    ),
]
