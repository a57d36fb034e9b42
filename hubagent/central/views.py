"""What ``hubctl`` shows: the fleet, the stock directory, replies, central tables.

Retained messages (hub state, stock summaries) are read by subscribing and
waiting until the broker has been quiet for a moment after the SUBACK: a
broker sends a filter's retained messages right after acknowledging it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from hubagent.central.db import Database
from hubagent.central.link import Broker, Session

LOCKER_COLUMNS = ("bank", "compartment", "state", "item", "alarms", "seq")
PARCEL_COLUMNS = ("parcel", "state", "bank", "compartment", "size", "expires_at", "seq")
_QUIET_S = 0.4


class _Collector:
    """Messages by topic, and when the last one arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: dict[str, Any] = {}
        self.telemetry: dict[str, Any] = {}
        self.last = time.monotonic()

    def __call__(self, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload) if msg.payload else None
        except ValueError:
            doc = None
        with self.lock:
            self.last = time.monotonic()
            if msg.topic.endswith("/telemetry"):
                self.telemetry[msg.topic] = doc
            elif doc is not None:
                self.messages[msg.topic] = doc
            else:
                self.messages.pop(msg.topic, None)


def retained(broker: Broker, filters: list[str], wait_s: float,
             linger_s: float = 0.0) -> _Collector:
    """Subscribe to ``filters`` and collect until quiet (at most ``wait_s``)."""
    got = _Collector()
    with Session(broker, got, filters) as session:
        session.subscribed.wait(wait_s)
        start = time.monotonic()
        while True:
            now = time.monotonic()
            with got.lock:
                quiet = now - max(got.last, start) >= _QUIET_S
            if (quiet and now - start >= linger_s) or now - start >= wait_s:
                break
            time.sleep(0.05)
    return got


def _hub_of(broker: Broker, topic: str) -> str:
    return topic[len(broker.prefix) + 1:].split("/", 1)[0]


def fleet(broker: Broker, wait_s: float = 1.5) -> list[dict[str, Any]]:
    """Every hub with a retained state, with telemetry heard within ``wait_s``."""
    p = broker.prefix
    got = retained(broker, [f"{p}/+/state", f"{p}/+/telemetry"], wait_s, linger_s=wait_s)
    hubs: dict[str, dict[str, Any]] = {}
    for topic, st in sorted(got.messages.items()):
        if isinstance(st, dict):
            hubs[_hub_of(broker, topic)] = {
                "hub": _hub_of(broker, topic), "state": st.get("state"),
                "alerts": st.get("alerts") or [], "version": st.get("version"),
                "session": st.get("session"), "db": st.get("db"), "since": st.get("since"),
                "telemetry": None}
    for topic, sample in got.telemetry.items():
        hub = hubs.get(_hub_of(broker, topic))
        if hub is not None and isinstance(sample, dict):
            hub["telemetry"] = _telemetry_view(sample)
    return [hubs[h] for h in sorted(hubs)]


def _telemetry_view(sample: Mapping[str, Any]) -> dict[str, Any]:
    sync: Mapping[str, Any] = sample["sync"] if isinstance(sample.get("sync"), dict) else {}
    power: Mapping[str, Any] = sample["power"] if isinstance(sample.get("power"), dict) else {}
    return {"at": sample.get("at"), "sync_lag_s": sync.get("oldest_unacked_age_s"),
            "waiting": sync.get("outbox_depth"), "last_seq": sync.get("last_seq"),
            "power": power.get("state")}


def add_central_view(db: Database, hubs: list[dict[str, Any]]) -> None:
    """Add central's last telemetry, last seen and acked seq to each hub."""
    rows = {r[0]: r for r in db.read(
        "SELECT h.hub, h.telemetry, h.telemetry_at, h.seen_at, c.upto FROM hubs h "
        "LEFT JOIN cursors c ON c.hub = h.hub AND c.db = h.db")}
    for hub in hubs:
        row = rows.get(hub["hub"])
        if row is None:
            continue
        if hub["telemetry"] is None and row[1]:
            hub["telemetry"] = _telemetry_view(json.loads(row[1]))
        seen = max(x for x in (row[2], row[3], 0.0) if x is not None)
        hub["last_seen"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seen)) if seen else None
        hub["central_acked_seq"] = row[4]


def hubs_table(hubs: list[dict[str, Any]]) -> str:
    """Human view of :func:`fleet`."""
    rows = []
    for h in hubs:
        t = h.get("telemetry") or {}
        rows.append({"hub": h["hub"], "state": h["state"], "alerts": ",".join(h["alerts"]) or "-",
                     "version": h["version"], "session": h["session"],
                     "db": (h["db"] or "")[:8], "lag_s": t.get("sync_lag_s"),
                     "waiting": t.get("waiting"), "power": t.get("power"),
                     "last_seen": h.get("last_seen") or h.get("since")})
    cols = ("hub", "state", "alerts", "version", "session", "db", "lag_s", "waiting", "power",
            "last_seen")
    return table(rows, cols) if rows else "no hubs with a retained state"


def stock_directory(broker: Broker, sku: str, wait_s: float = 3.0) -> list[dict[str, Any]]:
    """Where ``sku`` is: one row per hub and bin with a positive quantity."""
    got = retained(broker, [f"{broker.prefix}/+/stock/{sku}"], wait_s)
    rows = []
    for topic, doc in sorted(got.messages.items()):
        if not isinstance(doc, dict) or not isinstance(doc.get("bins"), dict):
            continue
        for bin_, qty in sorted(doc["bins"].items()):
            if isinstance(qty, (int, float)) and qty > 0:
                rows.append({"hub": _hub_of(broker, topic), "sku": sku, "bin": bin_,
                             "on_hand": qty, "name": doc.get("name"), "seq": doc.get("seq")})
    return rows


def stock_table(sku: str, rows: list[dict[str, Any]]) -> str:
    """Human view of :func:`stock_directory`."""
    if not rows:
        return f"{sku}: no hub has it"
    total = sum(r["on_hand"] for r in rows)
    return table(rows, ("hub", "bin", "on_hand")) + f"\n{sku}: {total} in {len(rows)} bin(s)"


def fan_out(broker: Broker, hubs: Sequence[str], name: str, args: Mapping[str, Any], *,
            command_id: str | None, timeout: float, retries: int,
            expiry: int | None) -> dict[str, dict[str, Any]]:
    """Send one command to several hubs at once; the reply (or an error) per hub."""
    replies: dict[str, dict[str, Any]] = {}
    with Session(broker) as session:
        def one(hub: str) -> None:
            try:
                replies[hub] = session.requester.send(
                    hub, name, args, command_id=command_id, timeout=timeout,
                    retries=retries, expiry=expiry)
            except TimeoutError as e:
                replies[hub] = {"id": command_id, "ok": False,
                                "error": {"code": "timeout", "message": str(e)}}
        threads = [threading.Thread(target=one, args=(h,)) for h in hubs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {h: replies[h] for h in hubs}


def replies_text(replies: Mapping[str, Mapping[str, Any]]) -> str:
    """Human view of :func:`fan_out`."""
    lines = []
    for hub, r in replies.items():
        if r.get("ok") is True:
            dup = " (duplicate)" if r.get("duplicate") else ""
            lines.append(f"{hub}: ok{dup} {json.dumps(r.get('result'), sort_keys=True)}")
        else:
            err = r.get("error") or {}
            lines.append(f"{hub}: error {err.get('code')}: {err.get('message')}")
    return "\n".join(lines)


def _current_db(db: Database, hub: str) -> str | None:
    rows = db.read("SELECT db FROM hubs WHERE hub = ?", (hub,))
    return str(rows[0][0]) if rows and rows[0][0] else None


def events(db: Database, hub: str, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    """The hub's stored events (current database) with seq above ``after``."""
    dbid = _current_db(db, hub)
    rows = db.read("SELECT seq, id, kind, at, data FROM events WHERE hub = ? AND db = ? "
                   "AND seq > ? ORDER BY seq LIMIT ?", (hub, dbid or "", after, limit))
    return [{"hub": hub, "db": dbid, "seq": r[0], "id": r[1], "kind": r[2], "at": r[3],
             "data": json.loads(r[4])} for r in rows]


def event_line(ev: Mapping[str, Any]) -> str:
    """One event as a line of text."""
    return f"{ev['seq']:>8} {ev['at'] or '-':<24} {ev['kind']:<18} " \
           f"{json.dumps(ev['data'], sort_keys=True)}"


def lockers(db: Database, hub: str) -> list[dict[str, Any]]:
    """The hub's compartments as central derived them, with active alarms."""
    alarms: dict[tuple[str, str], list[str]] = {}
    for bank, comp, kind in db.read("SELECT bank, compartment, kind FROM locker_alarms "
                                    "WHERE hub = ? AND active = 1", (hub,)):
        alarms.setdefault((bank, comp), []).append(kind)
    rows = [{"bank": r[0], "compartment": r[1], "state": r[2], "item": r[3], "seq": r[4],
             "alarms": ",".join(alarms.pop((r[0], r[1]), [])) or None}
            for r in db.read("SELECT bank, compartment, state, item, seq FROM lockers "
                             "WHERE hub = ? ORDER BY bank, compartment", (hub,))]
    rows += [{"bank": b, "compartment": c or None, "state": None, "item": None, "seq": None,
              "alarms": ",".join(k)} for (b, c), k in sorted(alarms.items())]
    return rows


def parcels(db: Database, hub: str) -> list[dict[str, Any]]:
    """The hub's parcels as central derived them."""
    return [dict(zip(PARCEL_COLUMNS, r)) for r in db.read(
        "SELECT parcel, state, bank, compartment, size, expires_at, seq FROM parcels "
        "WHERE hub = ? ORDER BY seq", (hub,))]


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as an aligned text table."""
    if not rows:
        return "(none)"
    cells = [[("-" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    head = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()
    return "\n".join([head, *("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
                              for row in cells)])
