"""The scan service: every scan from every scanner, understood, recorded, answered.

Runs on the core thread. For each :class:`~hubagent.events.RawScan` it
refuses a double scan (the same bytes twice in a row on one scanner within
``dedupe_s``), interprets the bytes, routes kinds another feature claimed
(``app.scan_handlers``) to it, and runs everything else through the shelf
workflows (:mod:`hubagent.scanning.workflows`) in one write transaction.
The scanner's feedback device is signalled right after that transaction
commits, so a beep always means "recorded".

Every refusal (unreadable bytes, unknown code or item, wrong item, over-pick,
a read the driver could not frame) emits a ``scan.rejected`` event and
gives ERROR (or ATTENTION) feedback, with no stock change. Accepted scans
emit no event of their own: the ``stock.moved``, ``delivery.received`` and
``pick.done`` events they cause are the record, so central is not flooded
with one event per beep.
"""

from __future__ import annotations

import collections
import copy
import logging
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

from hubagent.clock import Clock
from hubagent.errors import HubError, InputError
from hubagent.events import RawScan, ScanRejectedAtDevice
from hubagent.interfaces import LabelQueue, StaffRecords
from hubagent.ports import FeedbackPattern
from hubagent.scanning import schema
from hubagent.scanning.codes import Scan, ScanKind, interpret
from hubagent.scanning.roles import REFUSAL, refusal
from hubagent.scanning.session import Mode, Refused, Session
from hubagent.scanning.settings import ScannerSettings, ScanningSettings
from hubagent.scanning.workflows import StepContext, step
from hubagent.staff.settings import StaffSettings
from hubagent.stock import ledger

if TYPE_CHECKING:
    from hubagent.app import App

log = logging.getLogger(__name__)

EXCERPT_CHARS = 64
"""Longest excerpt of raw scan bytes put into a ``scan.rejected`` event."""


def pick_lines_fefo(store: Any, pick: str) -> list[dict[str, Any]]:
    """Pick lines, each naming where and which lot to pick first (``first``: FEFO)."""
    lines = schema.pick_lines(store, pick)
    for line in lines:
        bin = line["bin"] or _default_bin(store, line["sku"])
        line["first"] = ledger.first_lot(store, line["sku"], bin) if line["picked"] < line["qty"] else None
    return lines


def _default_bin(store: Any, sku: str) -> str | None:
    rows = store.query("SELECT default_bin FROM skus WHERE sku=?", (sku,))
    return rows[0]["default_bin"] if rows and rows[0]["default_bin"] else None


def excerpt(data: bytes, limit: int = EXCERPT_CHARS) -> str:
    """Printable ASCII kept, everything else ``\\xNN``; at most ``limit`` characters."""
    out: list[str] = []
    size = 0
    for b in data:
        piece = chr(b) if 32 <= b < 127 and b != 0x5C else f"\\x{b:02x}"
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


@runtime_checkable
class RecordsFeedback(Protocol):
    """A feedback device that keeps the patterns it gave (the simulator does)."""

    def history(self) -> Sequence[tuple[float, FeedbackPattern]]:
        """``(time, pattern)`` pairs, oldest first."""
        ...


class ScanService:
    """Scan handling, scanner sessions and the ``scanning`` status section."""

    def __init__(self, app: "App", settings: ScanningSettings, *, clock: Clock,
                 labels: LabelQueue | None = None, records: StaffRecords | None = None,
                 staff: StaffSettings | None = None) -> None:
        """Scans of ``app``'s scanners; shelf labels go to ``labels`` (None: no printer).

        ``clock`` times double scans, sessions, the rejection bucket and the
        wait for a badge's PIN. Badges are checked against ``records`` (None:
        every badge is refused); ``staff`` says whether a badge waits for its PIN.
        """
        staff = staff if staff is not None else StaffSettings()
        self.app = app
        self.clock = clock
        self.settings = settings
        self.labels = labels
        self.sessions: dict[str, Session] = {}
        self.accepted: collections.Counter[str] = collections.Counter()
        self.rejected: collections.Counter[str] = collections.Counter()
        # Per scanner: a token bucket of scan.rejected events, and the
        # rejections not recorded since the last one that was (a scanner
        # spewing noise must not fill the outbox and wear the SD card).
        self._reject_tokens: dict[str, tuple[float, float]] = {}
        self.unrecorded: collections.Counter[str] = collections.Counter()
        self.last_feedback: dict[str, dict[str, Any]] = {}
        self._last_read: dict[str, tuple[bytes, float]] = {}
        self._feedback_of = {d.name: d.settings.feedback for d in app.config.devices_of("scanners")
                             if isinstance(d.settings, ScannerSettings)}
        self._role_of: dict[str, str | None] = {d.name: d.settings.role for d in app.config.devices_of("scanners")
                                                if isinstance(d.settings, ScannerSettings)}
        self.records = records
        self.require_pin: bool = staff.require_pin
        self.pin_timeout_s: float = staff.pin_timeout_s

    # -- API for other features ---------------------------------------------
    def staff_for(self, scanner: str) -> str | None:
        """The staff member signed in on ``scanner`` (HA:STAFF:<badge>), if any.

        Callers acting for staff check the member against the staff registry
        at that moment (a sign-in may outlive a revocation).
        """
        s = self.sessions.get(scanner)
        return s.staff if s else None

    def pin_awaited(self, station: str) -> str | None:
        """Whose PIN the keypad named ``station`` should take now (a badge was scanned there)."""
        s = self.sessions.get(station)
        if s is None or s.pin_staff is None or s.pin_since is None:
            return None
        if self.clock.monotonic() - s.pin_since > self.pin_timeout_s:
            s.pin_staff = s.pin_since = None
            return None
        return s.pin_staff

    def pin_result(self, station: str, staff: str | None, reason: str) -> None:
        """The keypad checked the awaited PIN: sign ``staff`` in, or refuse (``reason``)."""
        current = self._session(station)
        current.pin_staff = current.pin_since = None
        if staff is None:
            self.reject(station, reason or "wrong_pin", "the PIN was not right; scan the badge again", b"")
            return
        work = copy.deepcopy(current)
        work.staff = staff
        with self.app.store.write() as tx:
            schema.save_station(tx, station, *work.persisted())
        self.sessions[station] = work
        self.accepted[station] += 1
        self.signal(station, FeedbackPattern.OK, f"staff {staff} signed in")

    def totals(self) -> tuple[int, int]:
        """``(accepted, rejected)`` scans since start, over every scanner."""
        return sum(self.accepted.values()), sum(self.rejected.values())

    def mode_of(self, scanner: str) -> str:
        """The scanner's current mode (``receive``, ``pick``, ...)."""
        return self._session(scanner).mode.value

    # -- loading --------------------------------------------------------------
    def load(self) -> None:
        """Restore modes, staff and open tasks from the database (on start)."""
        for name, row in schema.load_stations(self.app.store).items():
            self.sessions[name] = Session(Mode(row["mode"]), staff=row["staff"],
                                          delivery=row["delivery"], pick=row["pick"])

    def _session(self, scanner: str) -> Session:
        s = self.sessions.get(scanner)
        if s is None:
            s = self.sessions[scanner] = Session(Mode(self.settings.default_mode))
        return s

    def set_mode(self, scanner: str, mode: str) -> None:
        """Reset a scanner's session to ``mode`` (after a committed ``scanner.mode``)."""
        staff = self.staff_for(scanner)
        self.sessions[scanner] = Session(Mode(mode), staff=staff)

    # -- events ---------------------------------------------------------------
    def on_raw(self, ev: RawScan) -> None:
        """One read from a scanner (core thread)."""
        # In count mode every read of an item counts, the same one several times in a row too.
        if self._double(ev) and self._session(ev.device).mode is not Mode.COUNT:
            self.reject(ev.device, "double_scan", f"same code again within {self.settings.dedupe_s} s",
                        ev.data)
            return
        for lookup in self.app.scan_lookups:
            pattern = lookup(ev.data, ev.symbology, ev.device)
            if isinstance(pattern, FeedbackPattern):
                self.rejected[ev.device] += pattern is FeedbackPattern.ERROR
                self.accepted[ev.device] += pattern is not FeedbackPattern.ERROR
                self.signal(ev.device, pattern, "parcel barcode handled")
                return
        try:
            scan = interpret(ev.data, ev.symbology)
        except InputError as e:
            self.reject(ev.device, e.code, e.message, ev.data)
            return
        self.handle(ev.device, scan, self._at(ev))

    def on_device_reject(self, ev: ScanRejectedAtDevice) -> None:
        """A read the driver could not frame (over-long line)."""
        self._last_read.pop(ev.device, None)
        self.reject(ev.device, ev.reason, ev.detail or ev.reason, b"")

    def _at(self, ev: RawScan) -> float:
        """When the read reached the core (now, for an event dispatched without a time)."""
        return self.clock.monotonic() if ev.at is None else ev.at

    def _double(self, ev: RawScan) -> bool:
        at = self._at(ev)
        last = self._last_read.get(ev.device)
        self._last_read[ev.device] = (ev.data, at)
        window = self.settings.dedupe_s
        return window > 0 and last is not None and last[0] == ev.data and at - last[1] < window

    # -- one scan -------------------------------------------------------------
    def handle(self, scanner: str, scan: Scan, at: float | None = None) -> None:
        """Route or carry out one understood scan, then signal feedback."""
        now = self.clock.monotonic() if at is None else at
        why = refusal(self._role_of.get(scanner), scan.kind.value)
        if why is not None:
            self.reject(scanner, REFUSAL, why, scan.raw)
            return
        handler = self.app.scan_handlers.get(scan.kind.value)
        if scan.kind is ScanKind.RETURN and self._session(scanner).mode is Mode.RETURN:
            handler = None  # in return mode HA:RET is the return reference of the movements
        if handler is not None and scan.kind is not ScanKind.STAFF:
            self._routed(scanner, scan, handler)
            return
        if handler is None:
            self._run_step(scanner, scan, now)
        elif self._run_step(scanner, scan, now, quiet=True):
            # Staff sign-in is ours; the claimant hears of it too and its answer is the beep.
            self._routed(scanner, scan, handler)

    def _routed(self, scanner: str, scan: Scan, handler: Any) -> None:
        try:
            pattern = handler(scan, scanner)
        except InputError as e:
            self.reject(scanner, e.code, e.message, scan.raw)
            return
        except Exception:
            log.exception("%s: handler for %s scans failed", scanner, scan.kind.value)
            self.reject(scanner, "internal", f"the {scan.kind.value} handler failed; see the log",
                        scan.raw)
            return
        if not isinstance(pattern, FeedbackPattern):
            pattern = FeedbackPattern.OK
        if pattern is FeedbackPattern.ERROR:
            self.rejected[scanner] += 1
        else:
            self.accepted[scanner] += 1
        self.signal(scanner, pattern, f"{scan.kind.value} handled")

    def _run_step(self, scanner: str, scan: Scan, now: float, *, quiet: bool = False) -> bool:
        """Run the workflow step in one transaction; True if it was recorded.

        ``quiet`` leaves the feedback (and the accepted count) to the caller.
        """
        current = self._session(scanner)
        current.expire(now, self.settings.session_timeout_s)
        work = copy.deepcopy(current)
        try:
            with self.app.store.write() as tx:
                ctx = StepContext(tx, scanner, self.settings, self.labels, staff=self.records,
                                  require_pin=self.require_pin, now=self.clock.monotonic())
                done = step(ctx, work, scan)
                if work.persisted() != current.persisted():
                    schema.save_station(tx, scanner, *work.persisted())
                if not quiet:
                    tx.after_commit(lambda: self.signal(scanner, done.pattern, done.note))
        except (Refused, InputError) as e:  # InputError: the ledger refused (quantity range...)
            current.touched = now
            if scan.kind in (ScanKind.GTIN, ScanKind.SKU):
                current.qty = None  # a pending HA:QTY belonged to the refused item
            reason, message = (e.reason, e.message) if isinstance(e, Refused) else (e.code, e.message)
            pattern = e.pattern if isinstance(e, Refused) else FeedbackPattern.ERROR
            self.reject(scanner, reason, message, scan.raw, pattern)
            return False
        except HubError as e:
            log.error("%s: scan not recorded: %s", scanner, e)
            self.signal(scanner, FeedbackPattern.ERROR, f"not recorded: {e}")
            return False
        except Exception:  # a bug must still beep "not recorded", never go silent
            log.exception("%s: scan not recorded", scanner)
            self.signal(scanner, FeedbackPattern.ERROR, "not recorded: internal error")
            return False
        work.touched = now
        self.sessions[scanner] = work
        if not quiet:
            self.accepted[scanner] += 1
        return True

    # -- refusals and feedback --------------------------------------------------
    def reject(self, scanner: str, reason: str, message: str, raw: bytes,
               pattern: FeedbackPattern = FeedbackPattern.ERROR) -> None:
        """Record a ``scan.rejected`` event, then signal (no stock change)."""
        self.rejected[scanner] += 1
        session = self._session(scanner)
        data = {"scanner": scanner, "reason": reason, "message": message[:200],
                "raw": excerpt(raw), "mode": session.mode.value, "actor": session.staff,
                "unrecorded": self.unrecorded[scanner]}
        log.info("%s: scan rejected: %s (%s) %r", scanner, reason, message, data["raw"])
        recorded = False
        if self._may_record_rejection(scanner, self.clock.monotonic()):
            try:
                with self.app.store.write() as tx:
                    tx.emit("scan.rejected", data)
                recorded = True
            except HubError as e:
                log.error("%s: rejection not recorded: %s", scanner, e)
        self.unrecorded[scanner] = 0 if recorded else self.unrecorded[scanner] + 1
        self.signal(scanner, pattern, f"{reason}: {message}")

    def _may_record_rejection(self, scanner: str, now: float) -> bool:
        """Take a token from the scanner's bucket of ``scan.rejected`` events."""
        per_min = self.settings.rejected_events_per_min
        tokens, last = self._reject_tokens.get(scanner, (float(per_min), now))
        tokens = min(float(per_min), tokens + (now - last) * per_min / 60.0)
        allowed = tokens >= 1.0
        self._reject_tokens[scanner] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    def signal(self, scanner: str, pattern: FeedbackPattern, note: str) -> None:
        """Play ``pattern`` on the scanner's feedback device; never raises."""
        self.last_feedback[scanner] = {"pattern": pattern.value, "note": note[:120],
                                       "at": round(self.clock.time(), 3)}
        name = self._feedback_of.get(scanner)
        if name is None:
            return
        try:
            self.app.device("feedback", name).signal(pattern)  # type: ignore[attr-defined]
        except Exception:
            log.exception("%s: feedback %s failed", scanner, name)

    # -- status ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per scanner: mode, staff, what is in hand, counts, recent feedback."""
        scanners = {}
        for name in self._feedback_of:
            s = self._session(name)
            scanners[name] = {
                "role": self._role_of.get(name), "mode": s.mode.value, "staff": s.staff,
                "awaiting_pin": self.pin_awaited(name) is not None, "bin": s.bin, "dest": s.dest, "qty": s.qty,
                "condition": s.condition, "ref": s.ref, "counted": dict(s.counts),
                "delivery": self._delivery(s.delivery), "pick": self._pick(s.pick),
                "accepted": self.accepted[name], "rejected": self.rejected[name],
                "rejected_unrecorded": self.unrecorded[name],
                "last_feedback": self.last_feedback.get(name),
                "feedback_history": self._history(name),
            }
        store = self.app.store
        return {
            "scanners": scanners,
            "open_deliveries": [r["id"] for r in store.query(
                "SELECT id FROM deliveries WHERE status='open' ORDER BY created_at, id")],
            "open_picks": [r["id"] for r in store.query(
                "SELECT id FROM picks WHERE status='open' ORDER BY created_at, id")],
        }

    def _delivery(self, delivery: str | None) -> dict[str, Any] | None:
        if delivery is None:
            return None
        return {"id": delivery, "lines": schema.delivery_lines(self.app.store, delivery)}

    def _pick(self, pick: str | None) -> dict[str, Any] | None:
        if pick is None:
            return None
        return {"id": pick, "lines": pick_lines_fefo(self.app.store, pick)}

    def _history(self, scanner: str) -> list[str]:
        """The last patterns a simulated feedback device recorded (oldest first)."""
        name = self._feedback_of.get(scanner)
        keep = self.settings.status_history
        if name is None or keep == 0:
            return []
        device = self.app.device("feedback", name)
        if not isinstance(device, RecordsFeedback):
            return []
        return [p.value for _, p in device.history()[-keep:]]
