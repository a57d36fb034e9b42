"""The durable print queue: one row per job, in SQLite, before anything is sent.

A job moves ``queued -> sending -> done`` (or ``failed``). ``sending`` is
committed before the printer gets a single byte, so a crash during a send
leaves the job ``sending``; at the next start it becomes ``interrupted``
(it may or may not have printed, and printing it again automatically could
print it twice) and only ``print.reprint`` prints it again. A job that is
waiting can be ``cancelled``. Jobs are sent in ``qseq`` order, one at a
time per printer. Only the core thread calls these functions.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Mapping

import msgspec

from hubagent.store.store import Store, Tx, dumps

MIGRATIONS: list[tuple[str, str]] = [
    (
        "printing-0001-jobs",
        """
        -- One row per print job. qseq (AUTOINCREMENT: never reused, even after
        -- pruning) is the FIFO order; id is the job id a caller or command gave.
        CREATE TABLE print_jobs (
            qseq        INTEGER PRIMARY KEY AUTOINCREMENT,
            id          TEXT NOT NULL UNIQUE,
            printer     TEXT NOT NULL,
            template    TEXT NOT NULL,
            fields      TEXT NOT NULL,
            copies      INTEGER NOT NULL CHECK (copies >= 1),
            state       TEXT NOT NULL CHECK (state IN
                            ('queued', 'sending', 'done', 'failed', 'interrupted', 'cancelled')),
            attempts    INTEGER NOT NULL DEFAULT 0,
            errors      INTEGER NOT NULL DEFAULT 0,
            reason      TEXT,
            message     TEXT,
            origin      TEXT NOT NULL,
            reprint_of  TEXT,
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        );
        CREATE INDEX print_jobs_by_printer ON print_jobs(printer, state, qseq);
        """,
    ),
]

WAITING = ("queued", "sending")
FINISHED = ("done", "failed", "interrupted", "cancelled")

_COLUMNS = ("qseq, id, printer, template, fields, copies, state, attempts, errors, reason, message, "
            "origin, reprint_of, created_at, updated_at")


class Job(msgspec.Struct, frozen=True):
    """One row of ``print_jobs``."""

    qseq: int
    id: str
    printer: str
    template: str
    fields: dict[str, Any]
    copies: int
    state: str
    attempts: int
    errors: int
    reason: str | None
    message: str | None
    origin: str
    reprint_of: str | None
    created_at: str
    updated_at: str

    def summary(self) -> dict[str, Any]:
        """The job as shown by status and replies (without its field values)."""
        return {"job": self.id, "printer": self.printer, "template": self.template, "copies": self.copies,
                "state": self.state, "attempts": self.attempts, "reason": self.reason,
                "message": self.message, "reprint_of": self.reprint_of, "created_at": self.created_at,
                "updated_at": self.updated_at}


def _job(row: tuple[Any, ...]) -> Job:
    values = list(row)
    values[4] = json.loads(values[4])
    return Job(*values)


def _one(conn: sqlite3.Connection, where: str, params: Any) -> Job | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM print_jobs WHERE {where}", params).fetchone()
    return _job(row) if row else None


def insert(tx: Tx, *, job_id: str, printer: str, template: str, fields: Mapping[str, object], copies: int,
           origin: str, reprint_of: str | None = None) -> Job:
    """Add a queued job (the caller has checked that ``job_id`` is new)."""
    now = tx.now
    tx.execute(
        "INSERT INTO print_jobs(id, printer, template, fields, copies, state, origin, reprint_of, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
        (job_id, printer, template, dumps(dict(fields)), copies, origin, reprint_of, now, now),
    )
    job = _one(tx.conn, "id=?", (job_id,))
    assert job is not None
    return job


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    """One job by id (``conn``: ``tx.conn`` or ``store.conn``)."""
    return _one(conn, "id=?", (job_id,))


def head(store: Store, printer: str) -> Job | None:
    """The oldest job still to be sent to ``printer``."""
    return _one(store.conn, "printer=? AND state='queued' ORDER BY qseq LIMIT 1", (printer,))


def waiting_count(conn: sqlite3.Connection, printer: str | None = None) -> int:
    """Jobs queued or being sent (for one printer, or all)."""
    if printer is None:
        row = conn.execute("SELECT COUNT(*) FROM print_jobs WHERE state IN ('queued', 'sending')").fetchone()
    else:
        row = conn.execute("SELECT COUNT(*) FROM print_jobs WHERE printer=? AND state IN ('queued', 'sending')",
                           (printer,)).fetchone()
    return int(row[0])


def reprint_count(conn: sqlite3.Connection, job_id: str) -> int:
    """How many reprints of ``job_id`` exist."""
    return int(conn.execute("SELECT COUNT(*) FROM print_jobs WHERE reprint_of=?", (job_id,)).fetchone()[0])


def _move(tx: Tx, job_id: str, frm: tuple[str, ...], to: str, extra: str = "", params: tuple[Any, ...] = ()) -> bool:
    marks = ", ".join("?" for _ in frm)
    cur = tx.execute(
        f"UPDATE print_jobs SET state=?, updated_at=?{extra} WHERE id=? AND state IN ({marks})",
        (to, tx.now, *params, job_id, *frm),
    )
    return cur.rowcount == 1


def mark_sending(tx: Tx, job_id: str) -> bool:
    """queued -> sending, counting the attempt; False if the job is no longer queued."""
    return _move(tx, job_id, ("queued",), "sending", ", attempts=attempts+1")


def mark_done(tx: Tx, job_id: str) -> bool:
    """sending -> done."""
    return _move(tx, job_id, ("sending",), "done", ", reason=NULL, message=NULL")


def requeue(tx: Tx, job_id: str, reason: str, message: str, *, count_error: bool) -> bool:
    """Back to (or still) queued after a failed attempt, remembering why."""
    extra = ", reason=?, message=?" + (", errors=errors+1" if count_error else "")
    return _move(tx, job_id, WAITING, "queued", extra, (reason, message))


def finish(tx: Tx, job_id: str, state: str, reason: str, message: str) -> bool:
    """A waiting job -> ``failed``/``cancelled``/``interrupted`` with a reason."""
    assert state in FINISHED and state != "done"
    return _move(tx, job_id, WAITING, state, ", reason=?, message=?", (reason, message))


def sending_jobs(conn: sqlite3.Connection) -> list[Job]:
    """Jobs left ``sending`` (by a crash), oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM print_jobs WHERE state='sending' ORDER BY qseq").fetchall()
    return [_job(r) for r in rows]


def prune(tx: Tx, keep: int) -> int:
    """Delete all but the newest ``keep`` finished jobs; returns how many went."""
    cur = tx.execute(
        "DELETE FROM print_jobs WHERE state IN ('done', 'failed', 'interrupted', 'cancelled') AND qseq NOT IN "
        "(SELECT qseq FROM print_jobs WHERE state IN ('done', 'failed', 'interrupted', 'cancelled') "
        "ORDER BY qseq DESC LIMIT ?)",
        (keep,),
    )
    return cur.rowcount


def recent(store: Store, limit: int = 20) -> list[Job]:
    """The newest jobs, newest first."""
    rows = store.conn.execute(f"SELECT {_COLUMNS} FROM print_jobs ORDER BY qseq DESC LIMIT ?", (limit,)).fetchall()
    return [_job(r) for r in rows]
