"""The calls table: every call's verdict and what was decided for it; the only writer of
``calls``, ``consent`` and ``burst_pauses``.

Why the order matters: a missed call is committed (``record_outcome``) before the policy
runs or anything is queued, so a crash at any later point loses no call; the outbox row that
may follow is unique per (call, kind), so replaying the same verdict never texts twice.

Every write here is idempotent (a duplicate verdict or a second decision for a decided call
changes nothing), so a caller holding a verdict through a store outage may simply retry it.
The outbox records its own decisions on a call (texted, refused, cancelled) through
:func:`mark_decision`, inside its own transaction.

The ``*_in`` functions and :func:`mark_decision` are plain functions of a ``sqlite3``
connection: the bodies of transactions the caller runs through ``Store.run`` (the pipeline
records, decides and queues a call in one, in one trip to the database thread).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from textback.outbound.policy import number_country, number_prefix
from textback.outbound.settings import PolicyConfig
from textback.pbx.outcome import UNKNOWN_AFTER_RESTART, CallOutcome
from textback.store import Store

_TOP = "\uffff"  # sorts after any character of a number: [prefix, prefix + _TOP) is a range
# uses the partial index calls_missed_caller (caller, decided_at)
MISSED_FROM_PREFIX = ("SELECT count(*) FROM calls WHERE verdict = 'missed' AND "
                      "direction = 'inbound' AND caller >= ? AND caller < ? AND decided_at > ?")


@dataclass(frozen=True, slots=True)
class BurstPause:
    """A prefix whose texts are paused after a burst of missed calls; also the staff alert
    (``alerted_at`` None until someone has told staff)."""

    id: int
    prefix: str
    did: str | None
    call_id: str
    calls: int
    window_s: float
    started_at: float
    until_at: float
    detail: str
    alerted_at: float | None


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What ``record_outcome`` did: ``new`` False for a duplicate verdict, with the stored
    verdict (``conflict`` when the duplicate disagrees with what was stored first)."""

    call_id: str
    new: bool
    stored_verdict: str
    conflict: bool = False


async def record_outcome(store: Store, outcome: CallOutcome, decided_at: float) -> RecordResult:
    """Commit the verdict on one call (every verdict: answered and ignored too).

    Idempotent: a second verdict for the same call id changes nothing and is reported
    (``new`` False; ``conflict`` when it disagrees), with one exception: a verdict
    recovered from the PBX's own records (``extra["recovered"]``) replaces a stored
    ``unknown-after-restart`` (``new`` True). A missed inbound call from a known number
    also gets its consent row, in the same transaction.
    """
    return await store.run("record_outcome",
                           lambda db: record_outcome_in(db, outcome, decided_at))


def record_outcome_in(db: sqlite3.Connection, outcome: CallOutcome,
                      decided_at: float) -> RecordResult:
    """:func:`record_outcome` inside the caller's transaction ``db`` (the pipeline records,
    decides and queues a call in one transaction: one commit, no lock waits between)."""
    record = json.dumps(outcome.to_record(), ensure_ascii=False, default=str)
    country = number_country(outcome.caller) if (
        outcome.direction == "inbound" and outcome.caller
        and outcome.caller.startswith("+")) else None
    cur = db.execute(
        """INSERT INTO calls (call_id, pbx, direction, caller, caller_name, withheld,
               did, callee, connected, verdict, reason, voicemail_left, ring_s,
               started_at, ended_at, decided_at, record, country)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (call_id) DO NOTHING""",
        (outcome.call, outcome.pbx, outcome.direction, outcome.caller,
         outcome.caller_name, int(outcome.withheld), outcome.did, outcome.callee,
         int(outcome.connected), outcome.verdict, outcome.reason,
         int(outcome.voicemail_left), outcome.ring_s, outcome.started_at,
         outcome.ended_at, decided_at, record, country))
    if cur.rowcount == 0:
        row = db.execute("SELECT verdict, reason FROM calls WHERE call_id = ?",
                         (outcome.call,)).fetchone()
        if not (row is not None and row["reason"] == UNKNOWN_AFTER_RESTART
                and outcome.extra.get("recovered")
                and _supersede_unknown(db, outcome, decided_at, record, country)):
            stored = row["verdict"] if row else outcome.verdict
            conflict = row is not None and (row["verdict"], row["reason"]) != (
                outcome.verdict, outcome.reason)
            return RecordResult(outcome.call, False, stored, conflict)
    if outcome.direction == "inbound" and outcome.caller and not outcome.withheld:
        at = outcome.started_at if outcome.started_at is not None else decided_at
        db.execute(
            "INSERT OR IGNORE INTO consent (call_id, number, did, at) VALUES (?,?,?,?)",
            (outcome.call, outcome.caller, outcome.did, at))
    return RecordResult(outcome.call, True, outcome.verdict)


def _supersede_unknown(db: sqlite3.Connection, outcome: CallOutcome,
                       decided_at: float, record: str, country: str | None) -> bool:
    """A call that ended while textback was down was first recorded ``unknown-after-restart``
    (its channels were gone at the resync, with no sign of how it ended); the PBX's own
    records, read a moment later, know: their verdict replaces that one, once, and only
    while nothing was decided for the call. True when it did."""
    cur = db.execute(
        """UPDATE calls SET direction = ?, caller = ?, caller_name = ?, withheld = ?,
               did = ?, callee = ?, connected = ?, verdict = ?, reason = ?,
               voicemail_left = ?, ring_s = ?, started_at = ?, ended_at = ?,
               decided_at = ?, record = ?, country = ?
           WHERE call_id = ? AND reason = ? AND decision IS NULL""",
        (outcome.direction, outcome.caller, outcome.caller_name, int(outcome.withheld),
         outcome.did, outcome.callee, int(outcome.connected), outcome.verdict,
         outcome.reason, int(outcome.voicemail_left), outcome.ring_s, outcome.started_at,
         outcome.ended_at, decided_at, record, country, outcome.call, UNKNOWN_AFTER_RESTART))
    return bool(cur.rowcount == 1)


async def record_skip(store: Store, call_id: str, reason: str, detail: str, at: float,
                      policy: PolicyConfig) -> bool:
    """Store the policy's skip for a call; False if the call already has a decision.

    A ``burst`` skip (the call that completed a burst) also pauses the caller's prefix for
    ``policy.burst_pause_s`` and records the staff alert, in the same transaction: the pause
    cannot be lost between the decision and its bookkeeping.
    """
    return await store.run("record_skip", lambda db: record_skip_in(
        db, call_id, reason, detail, at, policy))


def record_skip_in(db: sqlite3.Connection, call_id: str, reason: str, detail: str,
                   at: float, policy: PolicyConfig) -> bool:
    """:func:`record_skip` inside the caller's transaction ``db``."""
    decided = mark_decision(db, call_id, "skip", at, reason=reason, detail=detail)
    if decided and reason == "burst":
        _open_burst_pause(db, call_id, detail, at, policy)
    return decided


def mark_decision(db: sqlite3.Connection, call_id: str, decision: str, at: float, *,
                  reason: str | None = None, detail: str | None = None,
                  only_undecided: bool = True) -> bool:
    """Record what was decided for a call ("text", "skip" or "cancelled"), inside the
    caller's transaction ``db``; False when nothing changed (already decided, unless
    ``only_undecided`` is False: a cancellation overrides "text")."""
    sets = "decision = ?, decision_at = ?"
    params: list[Any] = [decision, at]
    if reason is not None:
        sets += ", skip_reason = ?"
        params.append(reason)
    if detail is not None:
        sets += ", skip_detail = ?"
        params.append(detail)
    where = "call_id = ?" + (" AND decision IS NULL" if only_undecided else "")
    cur = db.execute(f"UPDATE calls SET {sets} WHERE {where}", (*params, call_id))
    return bool(cur.rowcount == 1)


def _open_burst_pause(db: sqlite3.Connection, call_id: str, detail: str, at: float,
                      policy: PolicyConfig) -> None:
    row = db.execute("SELECT caller, did FROM calls WHERE call_id = ?", (call_id,)).fetchone()
    if row is None or not row["caller"]:
        return
    prefix = number_prefix(row["caller"], policy.prefix_digits)
    if db.execute("SELECT 1 FROM burst_pauses WHERE until_at > ? AND "
                  "substr(?, 1, length(prefix)) = prefix", (at, row["caller"])).fetchone():
        return  # already paused (a concurrent decision): one pause, one alert
    counted = db.execute(MISSED_FROM_PREFIX,
                         (prefix, prefix + _TOP, at - policy.burst_window_s)).fetchone()
    calls = int(counted[0]) if counted else 0
    db.execute(
        "INSERT INTO burst_pauses (prefix, did, call_id, calls, window_s, started_at, "
        "until_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (prefix, row["did"], call_id, calls, policy.burst_window_s, at,
         at + policy.burst_pause_s, detail))


async def missed_from_prefix(store: Store, prefix: str, since: float) -> int:
    """Missed inbound calls from numbers starting with ``prefix`` decided after ``since``."""
    row = await store.fetchone(MISSED_FROM_PREFIX, (prefix, prefix + _TOP, since))
    return int(row[0]) if row else 0



async def burst_pauses(store: Store, *, active_at: float | None = None,
                       unalerted: bool = False) -> list[BurstPause]:
    """Burst pauses, oldest first: all, those active at ``active_at``, or those whose staff
    alert has not been sent."""
    where: list[str] = []
    params: list[Any] = []
    if active_at is not None:
        where.append("until_at > ? AND started_at <= ?")
        params += [active_at, active_at]
    if unalerted:
        where.append("alerted_at IS NULL")
    sql = "SELECT * FROM burst_pauses" + (
        " WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    return [BurstPause(**dict(r)) for r in await store.fetchall(sql, params)]


async def mark_burst_alerted(store: Store, pause_id: int, at: float) -> bool:
    """Staff were told about this pause; False if it was already marked."""
    def mark(db: sqlite3.Connection) -> bool:
        return db.execute("UPDATE burst_pauses SET alerted_at = ? WHERE id = ? AND "
                          "alerted_at IS NULL", (at, pause_id)).rowcount == 1
    return await store.run("mark_burst_alerted", mark)


async def call(store: Store, call_id: str) -> dict[str, Any] | None:
    """The stored row of one call, or None."""
    row = await store.fetchone("SELECT * FROM calls WHERE call_id = ?", (call_id,))
    return dict(row) if row else None


async def undecided_calls(store: Store) -> list[CallOutcome]:
    """Missed calls recorded but never decided (the process died in between): the daemon
    runs the policy on them again at start."""
    rows = await store.fetchall(
        "SELECT record FROM calls WHERE decision IS NULL AND verdict = 'missed' "
        "AND direction = 'inbound' ORDER BY id")
    out = []
    for row in rows:
        r = json.loads(row["record"])
        known = {k: r[k] for k in CallOutcome.__dataclass_fields__ if k in r and k != "extra"}
        out.append(CallOutcome(**known))
    return out
