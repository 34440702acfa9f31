"""The durable outbox: at most one text per call and kind, surviving crashes.

States::

    queued ──claim──▶ sending ──mark_sent──▶ sent ──reports──▶ delivered | failed
      ▲  │                 │
      │  cancel            ├─ mark_failed(transient) ─▶ queued (backoff), same sender
      │  ▼                 ├─ mark_failed(permanent) ─▶ queued, next sender | failed
    cancelled / skipped    └─ crash ─▶ recover_after_crash ─▶ unconfirmed (or queued when
                                                               resend_unconfirmed = true)

``UNIQUE (call_id, kind)`` in the table makes a second text for one call impossible, even
if the same verdict is processed twice. A row in ``sending`` at start-up is never resent
blindly: the process may have died after the modem accepted AT+CMGS and before ``+CMGS``
was stored (see docs/outbox.md), so resending could text the caller twice.

The transitions on the way of a text (enqueue with its gate, claim, cancel, hand to the
channel) are plain functions of the ``sqlite3`` connection run through ``Store.run``: one
trip to the database thread each, however many statements (the ``*_in`` ones are the same
bodies for a caller's own transaction, as the pipeline's decide).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from textback.config import Config, default_policy
from textback.logfmt import log
from textback.outbound import call_record, gate, messages
from textback.outbound.policy import number_prefix
from textback.outbound.settings import PolicyConfig
from textback.store import Store

# outbox states that count as "a text went, or is about to go" for cooldown and caps
COUNTED_STATES = ("queued", "sending", "sent", "delivered", "unconfirmed", "failed")

logger = logging.getLogger("textback.outbound.outbox")

STATES = ("queued", "sending", "sent", "delivered", "failed", "unconfirmed", "cancelled",
          "skipped")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One row, as the sender needs it. ``sender`` is the one to use now."""

    id: int
    call_id: str | None
    kind: str
    number: str
    did: str | None
    body: str
    senders: tuple[str, ...]
    sender_index: int
    state: str
    attempts: int
    not_before: float
    last_error: str | None
    encoding: str | None = None
    parts: int | None = None

    @property
    def sender(self) -> str | None:
        return self.senders[self.sender_index] if self.sender_index < len(self.senders) \
            else None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """``created`` False when a text for this (call, kind) already existed (``id`` is it).
    ``refused`` is the gate's reason when the text was refused (the row is ``skipped``)."""

    id: int
    created: bool
    state: str
    refused: str | None = None
    detail: str = ""

    @property
    def queued(self) -> bool:
        """A new row that will be sent (not a duplicate, not refused)."""
        return self.created and self.refused is None


@dataclass(frozen=True, slots=True)
class FailResult:
    """After ``mark_failed``: the new state, the next sender and when it will be tried."""

    state: str
    sender: str | None
    not_before: float | None


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What ``recover_after_crash`` found: rows that simply resume (``queued`` counts them,
    ``never_handed`` among them: claimed but never committed to the channel), rows left
    unconfirmed (never resent) and rows requeued because resend_unconfirmed is set."""

    queued: int = 0
    unconfirmed: list[OutboxItem] = field(default_factory=list)
    requeued: list[OutboxItem] = field(default_factory=list)
    never_handed: list[OutboxItem] = field(default_factory=list)


def _item(row: Any) -> OutboxItem:
    return OutboxItem(
        id=row["id"], call_id=row["call_id"], kind=row["kind"], number=row["number"],
        did=row["did"], body=row["body"], senders=tuple(json.loads(row["senders"])),
        sender_index=row["sender_index"], state=row["state"], attempts=row["attempts"],
        not_before=row["not_before"], last_error=row["last_error"],
        encoding=row["encoding"], parts=row["parts"],
    )


def _insert(db: sqlite3.Connection, *, call_id: str | None, kind: str, number: str, did: str | None,
                  body: str, template: str | None, encoding: str | None, parts: int | None,
                  senders: list[str] | tuple[str, ...], not_before: float, now: float,
                  refused: str | None) -> int:
    """The raw insert, private to this module: only ``Outbox.enqueue`` calls it, after the
    gate (tests/test_gate.py checks no other module writes to the outbox table)."""
    cur = db.execute(
        """INSERT INTO outbox (call_id, kind, number, did, body, template, encoding,
               parts, senders, state, cancel_reason, not_before, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (call_id, kind, number, did, body, template, encoding, parts,
         json.dumps(list(senders)), "queued" if refused is None else "skipped", refused,
         not_before, now, now))
    new_id = cur.lastrowid
    assert new_id is not None
    return int(new_id)


def release_parked(db: sqlite3.Connection, item_id: int, now: float,
                   parked_at: float) -> None:
    """A row queued with ``not_before = parked_at`` (a follow-up parked while its stop
    checks run) becomes due now, inside the caller's transaction ``db``."""
    db.execute("UPDATE outbox SET not_before = ?, updated_at = ? WHERE id = ? AND "
               "state = 'queued' AND not_before >= ?", (now, now, item_id, parked_at))


def cancel_parked(db: sqlite3.Connection, item_id: int, reason: str, now: float) -> None:
    """Cancel a parked row whose stop checks said no, inside the caller's transaction."""
    db.execute("UPDATE outbox SET state = 'cancelled', cancel_reason = ?, updated_at = ? "
               "WHERE id = ? AND state = 'queued'", (reason, now, item_id))


def cancel_for_number_in(db: sqlite3.Connection, number: str, reason: str, now: float) -> int:
    """:meth:`Outbox.cancel_for_number` (every kind, every DID) inside the caller's
    transaction ``db``: the pipeline cancels a reached caller's texts in the transaction
    that records the answered call."""
    return _cancel_where(db, "number = ?", [number], reason, now)


def _cancel_where(db: sqlite3.Connection, where: str, params: Any, reason: str,
                  now: float) -> int:
    rows = db.execute(
        f"UPDATE outbox SET state = 'cancelled', cancel_reason = ?, updated_at = ? "
        f"WHERE state = 'queued' AND {where} RETURNING id, call_id, kind",
        (reason, now, *params)).fetchall()
    for _id, call_id, kind in rows:
        if call_id is not None and kind == "textback":
            call_record.mark_decision(db, call_id, "cancelled", now, reason=reason,
                                      only_undecided=False)
    return len(rows)


_GATE_SNAPSHOT = """SELECT
  (SELECT opted_out FROM opt_outs WHERE number = :n) AS opted_out,
  (SELECT count(*) FROM outbox WHERE number = :n AND kind = 'optout-confirm'
      AND state IN ({states}) AND created_at >= coalesce(
          (SELECT at FROM opt_outs WHERE number = :n AND opted_out = 1), 1e18)) AS confirms,
  (SELECT count(*) FROM outbox WHERE number = :n AND created_at > :day
      AND state IN ({states})
      AND (kind = :k OR kind LIKE :k || ':%' OR kind LIKE :k || '-%')) AS kind_day,
  (SELECT count(*) FROM outbox WHERE substr(number, 1, :plen) = :prefix
      AND created_at > :hour AND +state IN ({states})) AS prefix_hour,
  (SELECT count(*) FROM outbox WHERE created_at > :hour
      AND +state IN ({states})) AS global_hour,
  (SELECT id FROM outbox WHERE call_id = :call AND kind = :kind) AS dup_id,
  (SELECT state FROM outbox WHERE call_id = :call AND kind = :kind) AS dup_state,
  (SELECT cancel_reason FROM outbox WHERE call_id = :call AND kind = :kind) AS dup_reason"""


def _gate_snapshot(db: sqlite3.Connection, base: str, number: str, now: float, policy: PolicyConfig,
                         call_id: str | None = None, kind: str | None = None
                         ) -> tuple[gate.GateSnapshot, EnqueueResult | None]:
    """The gate's counts, read in the enqueue transaction (the same states count as for
    the missed-call policy: what went or is about to go), and in the same trip to the
    database the row already queued for (``call_id``, ``kind``), if any (the unique key:
    then nothing is inserted)."""
    names = ",".join(f":s{i}" for i in range(len(COUNTED_STATES)))
    prefix = number_prefix(number, policy.prefix_digits)
    params = {"n": number, "k": base, "day": now - 86400.0, "hour": now - 3600.0,
              "plen": len(prefix), "prefix": prefix, "call": call_id, "kind": kind,
              **{f"s{i}": s for i, s in enumerate(COUNTED_STATES)}}
    row = db.execute(_GATE_SNAPSHOT.format(states=names), params).fetchone()
    dup = None if row["dup_id"] is None else EnqueueResult(
        row["dup_id"], False, row["dup_state"],
        row["dup_reason"] if row["dup_state"] == "skipped" else None)
    return gate.GateSnapshot(
        opted_out=bool(row["opted_out"]), confirms_since_optout=row["confirms"],
        kind_texts_day=row["kind_day"], texts_to_prefix_hour=row["prefix_hour"],
        texts_global_hour=row["global_hour"]), dup


def log_refused(result: EnqueueResult, *, kind: str, number: str, did: str | None,
                call_id: str | None) -> None:
    """The ``text_refused`` line for a text the gate refused (after its commit)."""
    if result.created and result.refused is not None:
        log(logger, logging.INFO, "text_refused", kind=kind, number=number, did=did,
            call=call_id, reason=result.refused, detail=result.detail, outbox=result.id)


class Outbox:
    """The outbox table's state machine; every transition is one transaction.

    ``config`` gives the gate its rules (``textback.outbound.gate``); without one the gate still
    runs, with the store's [policy] and no DIDs or staff known (so staff kinds are refused
    and only lab prefixes in ``policy.test_number_prefixes`` skip the number plan).
    """

    def __init__(self, store: Store, *, max_attempts: int = 5, retry_base_s: float = 30.0,
                 retry_max_s: float = 3600.0, resend_unconfirmed: bool = False,
                 config: Config | gate.GateConfig | None = None) -> None:
        self.store = store
        if config is None:
            self.gate = gate.GateConfig(default_policy())
        elif isinstance(config, gate.GateConfig):
            self.gate = config
        else:
            self.gate = gate.GateConfig.from_config(config)
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.resend_unconfirmed = resend_unconfirmed

    def reconfigure(self, config: Config) -> None:
        """A reloaded config (SIGHUP): the gate's rules and the retry policy, for the next
        enqueue and the next failure; rows already queued keep their times."""
        policy = config.policy
        self.gate = gate.GateConfig.from_config(config)
        self.max_attempts = policy.max_attempts
        self.retry_base_s = policy.retry_base_s
        self.retry_max_s = policy.retry_max_s
        self.resend_unconfirmed = policy.resend_unconfirmed

    def backoff(self, attempts: int) -> float:
        """Delay before try number ``attempts + 1``: base·2^(attempts-1), capped."""
        return float(min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1)))

    async def enqueue(self, *, call_id: str | None, kind: str, number: str, did: str | None,
                      body: str, senders: list[str] | tuple[str, ...], not_before: float,
                      now: float, template: str | None = None, encoding: str | None = None,
                      parts: int | None = None) -> EnqueueResult:
        """Queue a text, if the gate (``textback.outbound.gate``) allows it: the only way to add a
        row. A second enqueue for the same (call_id, kind) changes nothing.

        The gate decides inside the insert's transaction, on counts read in it, so two
        producers cannot both slip under a cap. A refused text is stored too, in state
        ``skipped`` with the reason in ``cancel_reason`` (``refused`` in the result), and
        logged as ``text_refused``. When ``call_id`` names a recorded call, its decision
        becomes ``text`` (or, for a refused missed-call text, ``skip`` with the reason) in
        the same transaction, so decision and outbox can never disagree after a crash.
        """
        result = await self.store.run("enqueue", lambda db: self.enqueue_in(
            db, call_id=call_id, kind=kind, number=number, did=did, body=body,
            senders=senders, not_before=not_before, now=now, template=template,
            encoding=encoding, parts=parts))
        log_refused(result, kind=kind, number=number, did=did, call_id=call_id)
        return result

    def enqueue_in(self, db: sqlite3.Connection, *, call_id: str | None, kind: str,
                   number: str, did: str | None, body: str,
                   senders: list[str] | tuple[str, ...], not_before: float, now: float,
                   template: str | None = None, encoding: str | None = None,
                   parts: int | None = None) -> EnqueueResult:
        """:meth:`enqueue` inside the caller's transaction ``db`` (the pipeline records,
        decides and queues a call in one). The gate runs here just the same; the caller
        logs a refusal after its commit (:func:`log_refused`)."""
        if not senders:
            raise ValueError("a text needs at least one sender")
        base = gate.base_kind(kind)  # ValueError for a kind without a rule
        snapshot, existing = _gate_snapshot(db, base, number, now, self.gate.policy,
                                                  call_id, kind)
        if existing is not None:  # this (call, kind) was queued already: nothing changes
            return existing
        decision = gate.decide(kind, number, did, snapshot, self.gate)
        refused = decision if isinstance(decision, gate.Refuse) else None
        new_id = _insert(
            db, call_id=call_id, kind=kind, number=number, did=did, body=body,
            template=template, encoding=encoding, parts=parts, senders=senders,
            not_before=not_before, now=now,
            refused=refused.reason if refused is not None else None)
        if call_id is not None and refused is None:
            call_record.mark_decision(db, call_id, "text", now)
        elif call_id is not None and refused is not None and kind == "textback":
            call_record.mark_decision(db, call_id, "skip", now,
                                      reason=refused.reason, detail=refused.detail)
        if refused is not None:
            return EnqueueResult(new_id, True, "skipped", refused.reason, refused.detail)
        return EnqueueResult(new_id, True, "queued")

    async def claim(self, item_id: int, now: float) -> OutboxItem | None:
        """Claim one given queued row (``textback send`` sending it itself); None when it is
        not queued (already taken, cancelled, refused)."""
        def claim(db: sqlite3.Connection) -> Any:
            return db.execute(
                "UPDATE outbox SET state = 'sending', claimed_at = ?, updated_at = ?, "
                "attempts = attempts + 1 WHERE id = ? AND state = 'queued' RETURNING *",
                (now, now, item_id)).fetchone()
        claimed = await self.store.run("claim", claim)
        return None if claimed is None else _item(claimed)

    async def claim_next(self, now: float,
                         senders: Collection[str] | None = None) -> OutboxItem | None:
        """The oldest due queued row, marked ``sending`` in the same transaction.

        ``senders`` limits the claim to rows whose current sender is one of them (the idle
        ones): a row is only marked ``sending`` when its sender can start on it at once, so
        a crash never finds a row in ``sending`` that no sender had begun.
        """
        where = "state = 'queued' AND not_before <= ?"
        params: list[Any] = [now]
        if senders is not None:
            names = sorted(senders)
            if not names:
                return None
            where += (" AND json_extract(senders, '$[' || sender_index || ']') IN ("
                      + ",".join("?" * len(names)) + ")")
            params += names
        # one statement (find, mark, return) in one trip to the database thread
        sql = ("UPDATE outbox SET state = 'sending', claimed_at = ?, updated_at = ?, "
               "attempts = attempts + 1 WHERE id = (SELECT id FROM outbox "
               f"WHERE {where} ORDER BY not_before, id LIMIT 1) RETURNING *")
        row = await self.store.run(
            "claim_next", lambda db: db.execute(sql, [now, now, *params]).fetchone())
        return None if row is None else _item(row)

    async def next_due_at(self) -> float | None:
        """When the next queued row becomes due (the daemon sleeps until then)."""
        row = await self.store.fetchone(
            "SELECT min(not_before) AS t FROM outbox WHERE state = 'queued'")
        return row["t"] if row else None

    async def due_senders(self, now: float) -> set[str]:
        """The current sender of every due queued row (to hand a lost modem's rows on)."""
        rows = await self.store.fetchall(
            "SELECT DISTINCT json_extract(senders, '$[' || sender_index || ']') AS s "
            "FROM outbox WHERE state = 'queued' AND not_before <= ?", (now,))
        return {r["s"] for r in rows if r["s"] is not None}

    async def mark_sent(self, item_id: int, mrs: list[int], sender: str, now: float, *,
                        tracked: bool = True) -> int:
        """The sender accepted the text: store the message and one part per ``mrs`` entry.

        ``tracked`` False (e.g. AMI MessageSend, whose Success does not mean delivered)
        stores the message as ``sent-unconfirmed``. Returns the message id.
        """
        async with self.store.transaction("mark_sent") as db:
            async with db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)) as c:
                row = await c.fetchone()
            if row is None or row["state"] != "sending":
                raise ValueError(f"outbox row {item_id} is not being sent "
                                 f"(state {row['state'] if row else 'missing'})")
            status = "sent" if tracked else "sent-unconfirmed"
            parts = max(len(mrs), row["parts"] or 1)
            message_id = await messages.add_outgoing(
                db, number=row["number"], did=row["did"], body=row["body"], parts=parts,
                encoding=row["encoding"], status=status, sender=sender,
                call_id=row["call_id"], outbox_id=item_id, created_at=row["created_at"],
                sent_at=now)
            for part_no, mr in enumerate(mrs, start=1):
                await db.execute(
                    "INSERT INTO message_parts (message_id, part_no, mr, status, status_at) "
                    "VALUES (?, ?, ?, 'sent', ?)", (message_id, part_no, mr, now))
            await db.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?, sent_by = ?, message_id = ?, "
                "updated_at = ?, last_error = NULL WHERE id = ?",
                (now, sender, message_id, now, item_id))
        return message_id

    async def mark_failed(self, item_id: int, reason: str, *, permanent: bool,
                          now: float) -> FailResult:
        """A send failed. Transient: retry the same sender after a backoff, until
        ``max_attempts``; permanent (or attempts used up): hand over to the next sender at
        once; with no sender left the row is ``failed`` for good."""
        async with self.store.transaction("mark_failed") as db:
            async with db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)) as c:
                row = await c.fetchone()
            if row is None or row["state"] != "sending":
                raise ValueError(f"outbox row {item_id} is not being sent")
            item = _item(row)
            if not permanent and item.attempts < self.max_attempts:
                when = now + self.backoff(item.attempts)
                await db.execute(
                    "UPDATE outbox SET state = 'queued', not_before = ?, last_error = ?, "
                    "updated_at = ?, handed_at = NULL WHERE id = ?",
                    (when, reason, now, item_id))
                return FailResult("queued", item.sender, when)
            nxt = item.sender_index + 1
            if nxt < len(item.senders):
                await db.execute(
                    "UPDATE outbox SET state = 'queued', sender_index = ?, attempts = 0, "
                    "not_before = ?, last_error = ?, updated_at = ?, handed_at = NULL "
                    "WHERE id = ?",
                    (nxt, now, f"{item.sender}: {reason}", now, item_id))
                return FailResult("queued", item.senders[nxt], now)
            await db.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ? "
                "WHERE id = ?", (f"{item.sender}: {reason}", now, item_id))
            return FailResult("failed", None, None)

    async def release(self, item_id: int, reason: str, not_before: float, now: float) -> None:
        """Give a claimed row back unsent (its sender cannot take it and it has no next
        sender): queued again from ``not_before``, the claim not counted as an attempt."""
        await self.store.run("release", lambda db: db.execute(
            "UPDATE outbox SET state = 'queued', not_before = ?, last_error = ?, "
            "attempts = max(attempts - 1, 0), handed_at = NULL, updated_at = ? "
            "WHERE id = ? AND state = 'sending'", (not_before, reason, now, item_id)))

    async def cancel(self, item_id: int, reason: str, now: float) -> bool:
        """Cancel a row still queued; False when it is already sending or done."""
        return await self.store.run("cancel", lambda db: _cancel_where(
            db, "id = ?", (item_id,), reason, now)) > 0

    async def cancel_for_number(self, number: str, reason: str, now: float,
                                did: str | None = None,
                                keep_kinds: Collection[str] = ()) -> int:
        """Cancel every queued text to ``number`` (caller reached, opted out), except those
        of ``keep_kinds``; how many."""
        where, params = "number = ?", [number]
        if did is not None:
            where += " AND did = ?"
            params.append(did)
        if keep_kinds:
            where += f" AND kind NOT IN ({','.join('?' * len(keep_kinds))})"
            params.extend(keep_kinds)
        return await self.store.run("cancel_for_number", lambda db: _cancel_where(
            db, where, params, reason, now))

    async def mark_handed(self, item_id: int, now: float) -> None:
        """The sender is about to commit the text to the channel (the modem's Ctrl-Z, the
        PBX action): from here on a crash leaves it unconfirmed rather than requeued."""
        await self.store.run("mark_handed", lambda db: db.execute(
            "UPDATE outbox SET handed_at = ?, updated_at = ? "
            "WHERE id = ? AND state = 'sending'", (now, now, item_id)))

    async def recover_after_crash(self, now: float) -> RecoveryReport:
        """Run once at start, before any claim. Queued rows simply resume. A row left in
        ``sending`` that never reached the channel (no ``handed_at``) is queued again: the
        modem never got its Ctrl-Z. One that did is ``unconfirmed`` (reported, never resent)
        unless resend_unconfirmed."""
        async with self.store.transaction("recover_after_crash") as db:
            async with db.execute("SELECT * FROM outbox WHERE state = 'sending'") as c:
                rows = list(await c.fetchall())
            stuck = [_item(r) for r in rows if r["handed_at"] is not None]
            never_handed = [_item(r) for r in rows if r["handed_at"] is None]
            for item in never_handed:
                await db.execute(
                    "UPDATE outbox SET state = 'queued', not_before = ?, updated_at = ?, "
                    "attempts = max(attempts - 1, 0), last_error = ? WHERE id = ?",
                    (now, now, "process stopped before the text reached the channel; "
                     "queued again", item.id))
            async with db.execute(
                    "SELECT count(*) FROM outbox WHERE state = 'queued'") as c:
                counted = await c.fetchone()
            queued = int(counted[0]) if counted else 0
            new_state = "queued" if self.resend_unconfirmed else "unconfirmed"
            for item in stuck:
                await db.execute(
                    "UPDATE outbox SET state = ?, not_before = ?, updated_at = ?, "
                    "handed_at = NULL, last_error = ? WHERE id = ?",
                    (new_state, now, now, "process stopped while sending: the text may or "
                     "may not have gone", item.id))
        if self.resend_unconfirmed:
            return RecoveryReport(queued, [], stuck, never_handed)
        return RecoveryReport(queued, stuck, [], never_handed)

    async def part_report(self, sender: str, mr: int, delivered: bool, now: float,
                          window_s: float = 7 * 86400.0) -> int | None:
        """A delivery report (+CDS) for part ``mr`` sent by ``sender``. The newest pending
        part with that reference (mr wraps at 256) gets the status; the message and its
        outbox row become delivered when all parts are, failed when one failed. Returns the
        message id, None when no recent part matches."""
        async with self.store.transaction("part_report") as db:
            async with db.execute(
                """SELECT p.message_id, p.part_no FROM message_parts p
                   JOIN messages m ON m.id = p.message_id
                   WHERE m.sender = ? AND p.mr = ? AND p.status = 'sent' AND m.sent_at > ?
                   ORDER BY m.sent_at DESC LIMIT 1""", (sender, mr, now - window_s)) as c:
                row = await c.fetchone()
            if row is None:
                return None
            message_id = row["message_id"]
            await db.execute(
                "UPDATE message_parts SET status = ?, status_at = ? "
                "WHERE message_id = ? AND part_no = ?",
                ("delivered" if delivered else "failed", now, message_id, row["part_no"]))
            async with db.execute(
                    "SELECT sum(status = 'delivered'), sum(status = 'failed'), count(*) "
                    "FROM message_parts WHERE message_id = ?", (message_id,)) as c:
                ok, bad, total = await c.fetchone() or (0, 0, 0)
            final = "failed" if bad else "delivered" if ok == total else None
            if final is not None:
                await messages.set_final_status(db, message_id, final,
                                                now if final == "delivered" else None)
                await db.execute("UPDATE outbox SET state = ?, updated_at = ? "
                                 "WHERE message_id = ? AND state = 'sent'",
                                 (final, now, message_id))
        return int(message_id)

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self.store.fetchone("SELECT * FROM outbox WHERE id = ?", (item_id,))
        return _item(row) if row else None

    async def depth(self) -> dict[str, int]:
        """Rows per state (``textback status``)."""
        rows = await self.store.fetchall(
            "SELECT state, count(*) AS n FROM outbox GROUP BY state")
        return {r["state"]: r["n"] for r in rows}
