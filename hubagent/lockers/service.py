"""The locker flows on the core thread: releases, doors, alarms, start-up.

A release is committed first (state change + audit row), and the lock is
pulsed only after the commit (:mod:`hubagent.lockers.pulses`); the pulse is
then audited and announced as ``locker.opened``. The door opening confirms
the release; the door closing after it completes the flow (``parcel.stored``,
``parcel.picked_up``, ...). A release whose door does not move within
``lock_confirm_s`` is undone and raises ``lock_failed``. A door that opens
with no release pending raises ``forced_open`` and faults the compartment
until central clears it. Everything here runs on the core thread.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from hubagent.clock import Clock, Timer
from hubagent.errors import CommandError, DeviceError, InputError
from hubagent.events import DeviceHealthChanged, DoorChanged, Health
from hubagent.interfaces import BadgePins, StaffDirectory, StaffRecords
from hubagent.lockers import codes, couriers, expiry, repo, restore, retime, service_state, tokens
from hubagent.lockers.inputs import CodeDesk
from hubagent.lockers.trust import ClockTrust, kernel_ntp_synced
from hubagent.lockers.lockout import AttemptLimiter
from hubagent.lockers.pulses import PulseJob, PulseQueue
from hubagent.lockers.settings import LockerPolicySettings
from hubagent.lockers.state import Purpose, State, TransitionError
from hubagent.lockers import state as sm
from hubagent.ports import CompartmentInfo, Device, LockerBank
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from hubagent.app import App

log = logging.getLogger(__name__)

Key = tuple[str, str]


class LockerService:
    """Locker banks, their compartments and the flows that move parcels through them."""

    def __init__(self, app: "App", policy: LockerPolicySettings, *, clock: Clock,
                 staff: StaffDirectory | None = None, records: StaffRecords | None = None,
                 pins: BadgePins | None = None) -> None:
        """Collect the configured banks; opens nothing.

        ``clock`` times lock-outs, pulse waits, door timers and the expiry
        check (monotonic), and dates expiry and records (wall). ``staff``
        says who is signed in on a scanner; ``records`` is the staff registry
        staff actions are checked against; ``pins`` the badges awaiting a PIN.
        """
        self.app = app
        self.store = app.store
        self.policy = policy
        self.clock = clock
        self.banks: dict[str, LockerBank] = {e.name: _as_bank(e.device) for e in app.devices_of("lockers")}
        self.layouts: dict[str, Mapping[str, CompartmentInfo]] = {
            name: bank.layout() for name, bank in self.banks.items()}
        """Each bank's compartments (size, pulse limit, door limit), from the bank itself."""
        self.limiter = AttemptLimiter(policy.max_failures, policy.base_lockout_s,
                                      policy.max_lockout_s, policy.forget_after_s)
        self.secret: bytes | None = None
        self.pulses = PulseQueue(self.banks, self.later, self._pulsed_ok, self._pulse_failed,
                                  clock=clock)
        self._timers: dict[tuple[str, Key], Timer] = {}
        self._too_long: set[Key] = set()
        self._pulsed: set[int] = set()  # release ids whose lock this process energised
        self._unreconciled: set[str] = set()  # banks whose doors could not be read at start
        self._started = False
        self.trust: ClockTrust | None = None
        self.ntp_synced: Callable[[], bool | None] = kernel_ntp_synced
        """Whether the kernel says NTP set the clock (tests inject their own)."""
        self.retimer: retime.Retimer | None = None
        self.records = records
        self.desk = CodeDesk(self, staff, records=records, pins=pins)
        """Checks typed codes and scans, and asks this service for releases."""

    # -- life cycle ----------------------------------------------------------
    def start(self) -> None:
        """Load the code secret, sync compartments, reconcile doors, arm the expiry check."""
        p = self.policy
        self.secret = codes.load_secret(p.secret_name, env_var=p.secret_env or None,
                                        state_dir=self.app.config.state_dir, create=p.create_secret)
        layout: dict[str, dict[str, str]] = {bank: {c: info.size for c, info in comps.items()}
                  for bank, comps in self.layouts.items()}
        with self.store.write() as tx:
            restore.sync_compartments(self, tx, layout)
        restore.remember_database(self.store)
        self.trust = retime.build_trust(self)
        self.retimer = retime.Retimer(self, self.trust)
        self._started = True
        for bank in self.banks:
            self.reconcile(bank)
        self._restore_alerts()
        restore.refresh_alert(self.app, self.store.conn, self.banks)
        self.later(0.0, self._expiry_tick)

    def stop(self) -> None:
        """Cancel timers and waiting pulses; the driver de-energises every lock on close."""
        self._started = False
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.pulses.clear()

    def park(self) -> None:
        """Refuse every new release and de-energise every lock (low-battery power-off).

        Called by the power feature on the core thread; pulses still waiting
        for a busy bank are undone (``locker.release_failed``, reason "parked").
        """
        self.pulses.paused = True
        for job in self.pulses.clear():
            self._pulse_failed(job, "parked")
        for name, bank in self.banks.items():
            try:
                bank.release_all()
            except Exception:
                log.exception("bank %s: release_all failed while parking", name)
        log.warning("locks parked: no releases until the power is back")

    def resume(self) -> None:
        """Accept releases again (the power-off was cancelled)."""
        self.pulses.paused = False

    @property
    def parked(self) -> bool:
        """Whether releases are refused because the locks are parked."""
        return self.pulses.paused

    def later(self, delay: float, fn: Callable[[], None]) -> bool:
        """Run ``fn`` on the core thread after ``delay`` s (guarded); False when not started."""
        if not self._started:
            return False

        def run() -> None:
            if not self._started:
                return  # stopped meanwhile: the store may be closed
            try:
                fn()
            except Exception:
                log.exception("locker timer failed")

        self.clock.call_later(delay, run)
        return True

    def wall(self) -> datetime:
        """The wall clock of expiry (from the core clock)."""
        return self.clock.now()

    def _timer(self, name: str, key: Key, delay: float, fn: Callable[[], None]) -> None:
        self._cancel(name, key)
        if not self._started:
            return

        def run() -> None:
            self._timers.pop((name, key), None)
            try:
                fn()
            except Exception:
                log.exception("locker timer %s failed", name)

        self._timers[(name, key)] = self.clock.call_later(delay, run)

    def _cancel(self, name: str, key: Key) -> None:
        handle = self._timers.pop((name, key), None)
        if handle is not None:
            handle.cancel()

    # -- helpers -------------------------------------------------------------
    def bank(self, name: str) -> LockerBank:
        """A configured bank; CommandError("unknown_bank") otherwise."""
        if name not in self.banks:
            raise CommandError("unknown_bank", f"no locker bank {name!r} (known: {', '.join(self.banks)})")
        return self.banks[name]

    def door_open(self, bank: str, compartment: str) -> bool | None:
        """The door position, or None when the bank cannot be read."""
        try:
            return bool(self.banks[bank].door_open(compartment))
        except (DeviceError, InputError, AssertionError, KeyError):
            return None

    def occupied(self, bank: str, compartment: str) -> bool | None:
        """The occupancy sensor's reading, or None without a sensor or when the bank cannot be read."""
        try:
            return self.banks[bank].occupied(compartment)
        except (DeviceError, InputError, AssertionError, KeyError):
            return None

    def wall_clock_sane(self) -> bool:
        """Whether the wall clock can be trusted for expiry (:mod:`hubagent.lockers.trust`)."""
        if self.trust is None:  # before start: only the year can be judged
            return self.wall().year >= self.policy.min_sane_year
        return self.trust.trusted()

    def release_detail(self, db: Any, release_id: int | None) -> dict[str, Any]:
        """The audit detail of a release (purpose, source, code id, staff, command)."""
        if not release_id:
            return {}
        row = repo.one(db, "SELECT detail FROM locker_audit WHERE seq=?", (release_id,))
        return json.loads(row["detail"]) if row else {}

    # -- releasing -----------------------------------------------------------
    def release(self, tx: Tx, bank: str, compartment: str, purpose: Purpose, *, source: str,
                reason: str = "", command: str | None = None, code_id: int | None = None,
                staff: str | None = None, expires_at: float | None = None,
                courier: str | None = None, token: str | None = None) -> int:
        """Move a compartment to its in-flight state and pulse its lock after commit.

        Returns the release id (its audit seq). Raises CommandError when the
        compartment is unknown or its state does not allow the release.
        """
        self.bank(bank)
        if self.parked:
            raise CommandError("parked", "the locks are parked for a power-off; no releases now")
        row = repo.compartment(tx, bank, compartment)
        if row is None or compartment not in self.layouts[bank]:
            raise CommandError("unknown_compartment", f"bank {bank} has no compartment {compartment!r}")
        current = State(row["state"])
        if purpose in _CUSTOMER_PURPOSES and service_state.is_out(tx, bank, compartment):
            raise CommandError("out_of_service", f"compartment {bank}/{compartment} is out of service")
        try:
            target = sm.release(current, purpose)
        except TransitionError as e:
            raise CommandError("busy" if sm.is_releasing(current) else "wrong_state", str(e)) from None
        detail: dict[str, Any] = {"purpose": purpose.value, "reason": reason, "from": current.value,
                                  "input": source}
        for k, v in (("command", command), ("code_id", code_id), ("staff", staff), ("courier", courier),
                     ("token", token),
                     ("item", row["item_id"]), ("item_kind", row["item_kind"])):
            if v is not None:
                detail[k] = v
        # A door already open (left open, pulled open) cannot show the lock
        # working by moving: the release counts as confirmed, and closing the
        # door completes the flow, instead of a lock_failed alarm.
        already_open = self.door_open(bank, compartment) is True
        if already_open:
            detail["door"] = "already open"
        release_id = repo.audit(tx, "release", bank=bank, compartment=compartment,
                                ref=command or row["item_id"], source=source, **detail)
        repo.update_compartment(tx, bank, compartment, state=target.value, prior=current.value,
                                release_id=release_id, release_ref=command, released_at=repo.format_time(self.wall()),
                                door_moved=int(already_open))
        seconds = self.layouts[bank][compartment].max_pulse_s
        job = PulseJob(bank, compartment, release_id, seconds,
                       give_up_at=self.clock.monotonic() + self.policy.busy_wait_s, expires_at=expires_at)
        tx.after_commit(lambda: self.pulses.submit(job))
        return release_id

    def _pulsed_ok(self, job: PulseJob) -> None:
        self._pulsed.add(job.release_id)
        with self.store.write() as tx:
            row = repo.compartment(tx, job.bank, job.compartment)
            detail = self.release_detail(tx, job.release_id)
            repo.audit(tx, "pulse", bank=job.bank, compartment=job.compartment,
                       ref=detail.get("command") or detail.get("item"), source=None,
                       release=job.release_id, seconds=job.seconds)
            data = {"bank": job.bank, "compartment": job.compartment, "release": job.release_id,
                    "purpose": detail.get("purpose"), "reason": detail.get("reason", ""),
                    "source": detail.get("input")}
            for k in ("command", "staff", "courier", "item", "item_kind"):
                if k in detail:
                    data[k] = detail[k]
            tx.emit("locker.opened", data)
        key = (job.bank, job.compartment)
        if row is not None and row["release_id"] == job.release_id and not row["door_moved"]:
            self._timer("confirm", key, self.policy.lock_confirm_s,
                        lambda: self._confirm_timeout(job.bank, job.compartment, job.release_id))

    def _pulse_failed(self, job: PulseJob, reason: str) -> None:
        with self.store.write() as tx:
            row = repo.compartment(tx, job.bank, job.compartment)
            if row is None or row["release_id"] != job.release_id or row["door_moved"]:
                return
            self._undo(tx, row, f"not pulsed: {reason}")
            tx.emit("locker.release_failed", {"bank": job.bank, "compartment": job.compartment,
                                              "release": job.release_id, "reason": reason})

    def _confirm_timeout(self, bank: str, compartment: str, release_id: int) -> None:
        """The door did not move after a pulse: the lock did not open."""
        with self.store.write() as tx:
            row = repo.compartment(tx, bank, compartment)
            if row is None or row["release_id"] != release_id or row["door_moved"]:
                return
            self._undo(tx, row, "lock_failed")
            repo.update_compartment(tx, bank, compartment, fault="lock_failed")
            self._alarm(tx, "lock_failed", bank, compartment,
                        detail=f"door did not move within {self.policy.lock_confirm_s} s of the release")
        self._refresh_alert(bank, compartment)

    def _undo(self, tx: Tx, row: dict[str, Any], why: str) -> None:
        """Return a compartment whose release never opened the door to its prior state."""
        bank, comp = row["bank"], row["compartment"]
        current, prior = State(row["state"]), State(row["prior"] or State.FREE.value)
        detail = self.release_detail(tx, row["release_id"])
        target = sm.undone(current, prior) if sm.is_releasing(current) else current
        fields: dict[str, Any] = {"state": target.value, "prior": None, "release_id": None,
                                  "release_ref": None, "released_at": None, "door_moved": 0}
        if current is State.RETURNING and row["item_id"]:
            repo.set_item_state(tx, "return", row["item_id"], "expected", bank=None, compartment=None)
            fields.update(item_kind=None, item_id=None)
        if detail.get("code_id"):
            repo.unspend_code(tx, int(detail["code_id"]))
        if detail.get("token"):
            tokens.unspend(tx, str(detail["token"]))
        repo.update_compartment(tx, bank, comp, **fields)
        self._pulsed.discard(row["release_id"])
        repo.audit(tx, "release_undone", bank=bank, compartment=comp, ref=row["item_id"],
                   release=row["release_id"], why=why, to=target.value)
        self._cancel("confirm", (bank, comp))

    # -- doors -----------------------------------------------------------------
    def on_door(self, ev: DoorChanged) -> None:
        """A debounced door change from a bank's thread (core thread now)."""
        if not self._started or ev.bank not in self.banks:
            return
        if ev.is_open:
            self._door_opened(ev.bank, ev.compartment)
        else:
            self._door_closed(ev.bank, ev.compartment)
        self._refresh_alert(ev.bank, ev.compartment)

    def _door_opened(self, bank: str, comp: str) -> None:
        key = (bank, comp)
        self._cancel("confirm", key)
        limit = self.policy.door_open_limit_s or self.layouts[bank][comp].door_open_limit_s
        self._timer("open_limit", key, limit, lambda: self._open_too_long(bank, comp))
        with self.store.write() as tx:
            row = repo.compartment(tx, bank, comp)
            if row is None:
                return
            # Only a door that opens after its lock was energised confirms a
            # release; one pulled open while the pulse still waits is forced.
            if sm.is_releasing(State(row["state"])) and row["release_id"] in self._pulsed:
                fields: dict[str, Any] = {"door_moved": 1}
                if row["fault"] == "lock_failed":
                    fields["fault"] = None  # the lock works after all
                    tx.emit("locker.alarm_cleared", {"kind": "lock_failed", "bank": bank, "compartment": comp})
                repo.update_compartment(tx, bank, comp, **fields)
                repo.audit(tx, "door_opened", bank=bank, compartment=comp, ref=row["item_id"],
                           release=row["release_id"])
                return
            repo.update_compartment(tx, bank, comp, fault="forced_open")
            repo.audit(tx, "door_forced", bank=bank, compartment=comp, ref=row["item_id"])
            self._alarm(tx, "forced_open", bank, comp, detail="door opened with no release pending",
                        item=row["item_id"])

    def _door_closed(self, bank: str, comp: str) -> None:
        key = (bank, comp)
        self._cancel("open_limit", key)
        cleared = key in self._too_long
        self._too_long.discard(key)
        with self.store.write() as tx:
            row = repo.compartment(tx, bank, comp)
            if row is None:
                return
            if cleared:
                tx.emit("locker.alarm_cleared", {"kind": "door_open_too_long", "bank": bank, "compartment": comp})
            if sm.is_releasing(State(row["state"])) and row["door_moved"]:
                self._complete(tx, row)
            else:
                repo.audit(tx, "door_closed", bank=bank, compartment=comp, ref=row["item_id"])

    def _open_too_long(self, bank: str, comp: str) -> None:
        if self.door_open(bank, comp) is not True:
            return
        self._too_long.add((bank, comp))
        with self.store.write() as tx:
            row = repo.compartment(tx, bank, comp)
            self._alarm(tx, "door_open_too_long", bank, comp, item=row["item_id"] if row else None,
                        detail="door left open")
        self._refresh_alert(bank, comp)

    def _complete(self, tx: Tx, row: dict[str, Any]) -> None:
        """The door closed after a confirmed release: finish the flow."""
        bank, comp = row["bank"], row["compartment"]
        current, prior = State(row["state"]), State(row["prior"] or State.FREE.value)
        target = sm.closed(current, prior)
        detail = self.release_detail(tx, row["release_id"])
        item_kind, item_id = row["item_kind"], row["item_id"]
        fields: dict[str, Any] = {"state": target.value, "prior": None, "release_id": None,
                                  "release_ref": None, "released_at": None, "door_moved": 0}
        base = {"bank": bank, "compartment": comp, "release": row["release_id"]}
        if current is State.LOADING:
            self._stored(tx, item_id, base)
        elif current is State.PICKING:
            repo.set_item_state(tx, "parcel", item_id, "picked_up")
            tx.emit("parcel.picked_up", {"parcel": item_id, "source": detail.get("input"), **base})
            fields.update(item_kind=None, item_id=None)
        elif current is State.RETRIEVING:
            done = "retrieved" if item_kind == "parcel" else "collected"
            repo.set_item_state(tx, item_kind, item_id, done)
            repo.spend_codes_of(tx, "pickup" if item_kind == "parcel" else "return", item_id, "retrieved")
            tx.emit(f"{item_kind}.{done}", {item_kind: item_id, "staff": detail.get("staff"), **base})
            fields.update(item_kind=None, item_id=None)
        elif current is State.RETURNING:
            repo.set_item_state(tx, "return", item_id, "dropped")
            tx.emit("return.dropped", {"return": item_id, **base})
        elif current is State.OPENING:
            tx.emit("locker.closed", {"command": detail.get("command"), "state": target.value, **base})
        repo.update_compartment(tx, bank, comp, **fields)
        self._pulsed.discard(row["release_id"])
        repo.audit(tx, "release_completed", bank=bank, compartment=comp, ref=item_id,
                   release=row["release_id"], to=target.value)

    def _stored(self, tx: Tx, parcel_id: str, base: dict[str, Any]) -> None:
        """A loaded parcel's door closed: it waits for its customer now."""
        parcel = repo.parcel(tx, parcel_id) or {}
        expires_at = parcel.get("expires_at")
        if not expires_at and self.wall_clock_sane():
            expires_at = repo.format_time(self.wall() + timedelta(seconds=self.policy.pickup_expiry_s))
            tx.execute("UPDATE locker_parcels SET deadline_by_hub=1 WHERE id=?", (parcel_id,))
        data: dict[str, Any] = {"parcel": parcel_id, "expires_at": expires_at, **base}
        if parcel.get("generate"):
            # Generated now, not at assign: the plaintext exists only in this
            # event for central (never in logs, status or audit rows).
            assert self.secret is not None
            for _ in range(100):
                code = codes.generate_code(self.policy.code_length)
                if not self.code_clashes(tx, code):
                    break  # else the same digits are live (for any keypad purpose): draw again
            else:
                raise RuntimeError("no free pickup code after 100 draws; raise code_length")
            repo.add_code(tx, codes.hash_code(self.secret, code, "pickup"), "pickup", parcel_id, expires_at)
            data["pickup_code"] = code
        else:
            tx.execute("UPDATE locker_codes SET expires_at=? WHERE purpose='pickup' AND ref=? AND spent_at IS NULL",
                       (expires_at, parcel_id))
        repo.set_item_state(tx, "parcel", parcel_id, "stored", expires_at=expires_at, generate=0)
        tx.emit("parcel.stored", data)

    def new_code_hash(self, tx: Any, purpose: str, code: str | None, code_hash: str | None) -> str | None:
        """The HMAC to store for a new ``purpose`` code: ``code`` checked and hashed here,
        or central's ``code_hash`` as given; None when neither was given.

        A malformed code is ``bad_code``; digits already live for any purpose
        are ``code_in_use`` (see :meth:`code_clashes`).
        """
        code, code_hash = codes.plain_or_hash("code", code, code_hash)
        if code is None:
            return code_hash
        try:
            normal = codes.normalise_code(code)
        except InputError as e:
            raise CommandError("bad_code", f"code: {e.message}") from None
        assert self.secret is not None
        if self.code_clashes(tx, normal):
            raise CommandError("code_in_use", "that code is already in use; choose another")
        return codes.hash_code(self.secret, normal, purpose)

    def expires_at(self, value: str | None) -> str | None:
        """A command's ``expires_at``, checked to lie ahead when the wall clock is sane."""
        return repo.future_time(value, self.wall() if self.wall_clock_sane() else None)

    def code_clashes(self, db: Any, code: str) -> bool:
        """Whether ``code`` (normalised) is live for any purpose a keypad accepts.

        A keypad tries pickup, return and staff codes, so the same digits may
        be live for one of them only, or one person's code would open another's.
        """
        return self.locker_code_clashes(db, code) or self.staff_code_clashes(db, code)

    def locker_code_clashes(self, db: Any, code: str) -> bool:
        """Whether ``code`` (normalised) is a live pickup or return code."""
        assert self.secret is not None
        return any(repo.code_is_live(db, p, codes.hash_code(self.secret, code, p))
                   for p in ("pickup", "return")) or couriers.code_is_live(db, self.secret, code)

    def staff_code_clashes(self, db: Any, code: str) -> bool:
        """Whether ``code`` (normalised) is a registered staff member's keypad code."""
        return self.records is not None and self.records.code_in_use(db, code)

    # -- alarms ---------------------------------------------------------------
    def _alarm(self, tx: Tx, kind: str, bank: str, comp: str | None, **detail: Any) -> None:
        repo.audit(tx, "alarm", bank=bank, compartment=comp, ref=detail.get("item"), alarm=kind, **detail)
        tx.emit("locker.alarm", {"kind": kind, "bank": bank, "compartment": comp, **detail})

    def _refresh_alert(self, bank: str, comp: str) -> None:
        """Raise or clear the hub alert of one compartment from its faults and open-door alarm."""
        row = repo.one(self.store.conn, "SELECT fault FROM locker_compartments WHERE bank=? AND compartment=?",
                       (bank, comp))
        problems = [row["fault"]] if row and row["fault"] else []
        if (bank, comp) in self._too_long:
            problems.append("door_open_too_long")
        self.app.set_alert(f"locker:{bank}/{comp}", ", ".join(problems) or None)

    def _restore_alerts(self) -> None:
        for row in repo.compartments(self.store.conn, self.banks):
            if row["fault"]:
                self._refresh_alert(row["bank"], row["compartment"])

    def clear_fault(self, tx: Tx, bank: str, comp: str, by: str) -> str | None:
        """Clear a compartment's fault (central checked it); the fault that was set."""
        self.bank(bank)
        row = repo.compartment(tx, bank, comp)
        if row is None:
            raise CommandError("unknown_compartment", f"bank {bank} has no compartment {comp!r}")
        if row["fault"]:
            repo.update_compartment(tx, bank, comp, fault=None)
            repo.audit(tx, "fault_cleared", bank=bank, compartment=comp, ref=by, fault=row["fault"])
            tx.emit("locker.alarm_cleared", {"kind": row["fault"], "bank": bank, "compartment": comp,
                                             "command": by})
        tx.after_commit(lambda: self._refresh_alert(bank, comp))
        return row["fault"]

    def on_health(self, ev: DeviceHealthChanged) -> None:
        """A bank faulted (cannot de-energise a lock, pins lost) or recovered."""
        if ev.role != "lockers" or ev.device not in self.banks or not self._started:
            return
        if ev.status.health is Health.FAULTED:
            with self.store.write() as tx:
                self._alarm(tx, "faulted", ev.device, None, detail=ev.status.detail)
        elif ev.status.health is Health.OK and ev.device in self._unreconciled:
            self.reconcile(ev.device)

    # -- start-up -----------------------------------------------------------
    def reconcile(self, bank: str) -> None:
        """Compare every door with the database after a (re)start of the bank.

        A release recorded as pending whose door is closed is completed if the
        door had moved (it opened and closed while we were away) and undone
        otherwise; a pending release with the door open waits for the close;
        a door open with nothing pending is a forced open.
        """
        self._unreconciled.discard(bank)
        for name in self.layouts[bank]:
            is_open = self.door_open(bank, name)
            if is_open is None:
                log.warning("bank %s unreadable; reconciling once it is back", bank)
                self._unreconciled.add(bank)
                return
            with self.store.write() as tx:
                row = repo.compartment(tx, bank, name)
                if row is None:
                    continue
                releasing = sm.is_releasing(State(row["state"]))
                if releasing and not is_open:
                    repo.audit(tx, "reconciled", bank=bank, compartment=name, ref=row["item_id"],
                               release=row["release_id"], door="closed", door_moved=bool(row["door_moved"]))
                    if row["door_moved"]:
                        self._complete(tx, row)
                    else:
                        self._undo(tx, row, "interrupted")
                elif releasing:
                    self._pulsed.add(row["release_id"])  # energised by the previous run
                    repo.update_compartment(tx, bank, name, door_moved=1)
                    repo.audit(tx, "reconciled", bank=bank, compartment=name, release=row["release_id"],
                               door="open")
            if is_open:
                if not releasing:
                    self._door_opened(bank, name)
                else:
                    limit = self.policy.door_open_limit_s or self.layouts[bank][name].door_open_limit_s
                    self._timer("open_limit", (bank, name), limit, functools.partial(self._open_too_long, bank, name))
            self._refresh_alert(bank, name)

    # -- expiry -------------------------------------------------------------
    def _expiry_tick(self) -> None:
        try:
            if self.retimer is not None:
                self.retimer.tick()
            self.expire_due()
        finally:
            if self._started:
                self.later(self.policy.expiry_check_s, self._expiry_tick)

    def expire_due(self) -> int:
        """Expire what is past its ``expires_at`` (see :func:`hubagent.lockers.expiry.expire_due`)."""
        return expiry.expire_due(self)

    # -- allocation -----------------------------------------------------------
    def allocate(self, tx: Tx, size: str, bank: str | None = None, *,
                 temperature: str = "ambient") -> tuple[str, str]:
        """The smallest free, healthy, in-service, closed compartment of ``size`` or larger.

        ``temperature`` "chilled" takes only chilled compartments and
        "ambient" only ambient ones (a chilled compartment is kept for what
        needs it). Raises CommandError("no_compartment") when none is free.
        """
        banks = [bank] if bank is not None else list(self.banks)
        for name in banks:
            self.bank(name)
        wanted = repo.SIZES[repo.SIZES.index(size):]
        chilled = temperature == "chilled"
        out = service_state.out_of_service(tx)
        free = {(r["bank"], r["compartment"]) for r in repo.compartments(tx, banks)
                if r["state"] == State.FREE.value and not r["fault"]} - set(out)
        for want in wanted:
            for b in banks:
                for comp, info in self.layouts[b].items():
                    if info.size == want and info.chilled == chilled and (b, comp) in free \
                            and self.door_open(b, comp) is False:
                        return b, comp
        raise CommandError("no_compartment", f"no free {temperature} compartment of size {size} or larger")


_CUSTOMER_PURPOSES = frozenset({Purpose.PICKUP, Purpose.RETURN, Purpose.LOAD})
"""Releases an out-of-service compartment refuses (staff and central may still open it)."""


def _as_bank(device: Device) -> LockerBank:
    """``device`` as a locker bank; TypeError names a driver that is not one."""
    if not isinstance(device, LockerBank):
        raise TypeError(f"locker device {device.name} ({type(device).__name__}) is not a LockerBank")
    return device
