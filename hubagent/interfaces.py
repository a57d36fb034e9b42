"""What one feature may ask of another: small typed interfaces.

A feature never reaches into another feature's service. When lockers need to
know who is signed in on a scanner, or the power feature needs to park the
locks before a power-off, the feature that can do it offers one of these
protocols (see :class:`~hubagent.feature.Interfaces`), and the composition
root hands it by keyword to the features built after it. A protocol here
names only what the user needs, so either side can change behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:
    from hubagent.lockers.inputs import Attempt
    from hubagent.staff.registry import Member, Reader
    from hubagent.ports import FeedbackPattern
    from hubagent.scanning.codes import Scan
    from hubagent.store.store import Tx

TelemetrySource = Callable[[], Mapping[str, object]]
"""Returns figures merged into each telemetry message."""


class StaffDirectory(Protocol):
    """Who is signed in where (offered by scanning, used by lockers)."""

    def staff_for(self, scanner: str) -> str | None:
        """The staff member signed in on ``scanner``, if any."""
        ...


class BadgePins(Protocol):
    """Badges waiting for their PIN on a keypad (offered by scanning, used by lockers' keypads)."""

    def pin_awaited(self, station: str) -> str | None:
        """The staff member whose PIN keypad ``station`` should take now (a badge was scanned there)."""
        ...

    def pin_result(self, station: str, staff: str | None, reason: str) -> None:
        """The keypad checked the PIN: sign ``staff`` in on scanner ``station``, or refuse with ``reason``."""
        ...


class StaffRecords(Protocol):
    """Central's staff registry (offered by the staff feature; used by scanning, lockers, pages)."""

    def member(self, db: "Reader", staff: str | None) -> "Member | None":
        """``staff`` if registered, not revoked and not expired."""
        ...

    def by_badge(self, db: "Reader", badge: str) -> "Member | None":
        """The live member holding ``badge``."""
        ...

    def pin_matches(self, db: "Reader", staff: str, pin: str) -> bool:
        """Whether ``pin`` is live member ``staff``'s PIN (constant-time)."""
        ...

    def live_codes(self, db: "Reader") -> list[dict[str, Any]]:
        """Live staff keypad code hashes as code rows (``id``, ``hash``, ``ref``, ``expires_at``)."""
        ...

    def code_in_use(self, db: "Reader", code: str) -> bool:
        """Whether a live member's keypad code is ``code`` (normalised digits)."""
        ...

    def add_clash_check(self, check: Callable[["Reader", str], bool]) -> None:
        """Also refuse a staff code for which ``check(db, code)`` is true (another keypad code)."""
        ...


class LabelQueue(Protocol):
    """Queue a label inside the caller's transaction (offered by printing)."""

    def enqueue(self, tx: "Tx", template: str, fields: Mapping[str, object], *, printer: str | None = None,
                job_id: str | None = None, copies: int = 1) -> str:
        """Validate and queue a label; returns the job id."""
        ...


class PrintPause(Protocol):
    """Stop and restart taking new print jobs (offered by printing, used by power)."""

    def pause_new(self, reason: str) -> None:
        """Refuse new jobs until :meth:`resume_new`; waiting jobs still print."""
        ...

    def resume_new(self) -> None:
        """Accept new jobs again."""
        ...


class LockParking(Protocol):
    """Park and resume the locker banks (offered by lockers, used by power)."""

    def park(self) -> None:
        """De-energise every lock and refuse new pulses."""
        ...

    def resume(self) -> None:
        """Take lock pulses again."""
        ...


class ClockTrustView(Protocol):
    """Whether the wall clock may be used for decisions (offered by lockers, used by kpi)."""

    def trusted(self) -> bool:
        """True unless the clock is behind or suspected ahead (see hubagent.lockers.trust)."""
        ...


class LockerDesk(Protocol):
    """Codes typed at a locker's screen (offered by lockers, used by the kiosk pages)."""

    def attempt(self, source: str, raw: str, purposes: tuple[str, ...], *, role: str = "keypad") -> "Attempt":
        """Check one code from input ``role``/``source`` and open what it entitles to."""
        ...

    def identify_staff(self, source: str, raw: str, *, role: str = "web", name: str | None = None) -> str | None:
        """The registered staff member whose code this is (a wrong code counts as a failure)."""
        ...

    def identify_badge(self, source: str, badge: str, pin: str, *, role: str = "web",
                       name: str | None = None) -> str | None:
        """The registered staff member holding ``badge`` whose PIN is ``pin`` (else a failure)."""
        ...

    def lockout_left(self, role: str, name: str) -> float:
        """Seconds input ``role``/``name`` stays locked out (0 when it may try)."""
        ...


class Uplink(Protocol):
    """The link to central (offered by sync when ``[mqtt]`` is configured)."""

    def on_connected(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` after every (re)connect, once subscriptions are made."""
        ...

    def add_telemetry(self, source: TelemetrySource) -> None:
        """Add ``source()`` to each telemetry message."""
        ...

    def pending_publish(self) -> int:
        """Events committed but not yet acknowledged by the broker."""
        ...

    def publish_offline(self) -> None:
        """Publish the retained ``offline`` state now (before a power-off)."""
        ...

    def is_connected(self) -> bool:
        """Whether the link to the broker is up."""
        ...

    def sync_lag_s(self) -> float | None:
        """Age of the oldest event central has not acknowledged (None when none waits)."""
        ...

    def publish_stock(self, sku: str, payload: bytes) -> None:
        """Publish the retained stock summary of ``sku`` (dropped while disconnected)."""
        ...

    def publish_restock(self, payload: bytes) -> None:
        """Publish the retained restock windows (dropped while disconnected)."""
        ...


SummaryFields = Callable[["Tx", str], Mapping[str, object]]
"""Extra fields of a SKU's retained stock summary, computed inside a read transaction."""


class StockSummary(Protocol):
    """The retained per-SKU stock summary (offered by stock, extended by the KPIs)."""

    def add_summary_fields(self, fields: SummaryFields) -> None:
        """Merge ``fields(tx, sku)`` into every summary published from now on."""
        ...


class ScanCounts(Protocol):
    """Scans accepted and refused since start (offered by scanning, used by telemetry)."""

    def totals(self) -> tuple[int, int]:
        """``(accepted, rejected)`` over every scanner."""
        ...


ScanHandler = Callable[["Scan", str], "FeedbackPattern"]
"""Handles a scan of a claimed kind on the core thread: ``handler(scan, scanner_name)``."""

ScanLookup = Callable[[bytes, "str | None", str], "FeedbackPattern | None"]
"""Offered each read before interpretation: ``lookup(data, symbology, scanner)``; a pattern
when the read was its business (a parcel's tracking number), None to let it go on."""
