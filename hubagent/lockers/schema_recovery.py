"""Locker tables for signed pickup tokens and for undoing decisions of a wrong clock."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "lockers-0201-pickup-tokens",
        """
        -- Signed pickup tokens used (hubagent.lockers.tokens): single use by id,
        -- written in the transaction of the release they opened.
        CREATE TABLE locker_tokens_spent (
            id          TEXT PRIMARY KEY,
            parcel      TEXT NOT NULL,
            release_id  INTEGER,
            spent_at    TEXT NOT NULL
        );
        """,
    ),
    (
        "lockers-0202-hub-deadlines",
        """
        -- 1 when the hub computed expires_at itself (no deadline from central),
        -- so a deadline computed on a wrong clock can be computed again.
        ALTER TABLE locker_parcels ADD COLUMN deadline_by_hub INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE locker_returns ADD COLUMN deadline_by_hub INTEGER NOT NULL DEFAULT 0;
        """,
    ),
]
