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
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from textback.store import Store

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
    """``created`` False when a text for this (call, kind) already existed (``id`` is it)."""

    id: int
    created: bool
    state: str


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


class Outbox:
    """The outbox table's state machine; every transition is one transaction."""

    def __init__(self, store: Store, *, max_attempts: int = 5, retry_base_s: float = 30.0,
                 retry_max_s: float = 3600.0, resend_unconfirmed: bool = False) -> None:
        self.store = store
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.resend_unconfirmed = resend_unconfirmed

    def backoff(self, attempts: int) -> float:
        """Delay before try number ``attempts + 1``: base·2^(attempts-1), capped."""
        return float(min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1)))

    async def enqueue(self, *, call_id: str | None, kind: str, number: str, did: str | None,
                      body: str, senders: list[str] | tuple[str, ...], not_before: float,
                      now: float, template: str | None = None, encoding: str | None = None,
                      parts: int | None = None) -> EnqueueResult:
        """Queue a text. A second enqueue for the same (call_id, kind) changes nothing.

        When ``call_id`` names a recorded call, its decision becomes ``text`` in the same
        transaction, so "decided to text" and "queued" can never disagree after a crash.
        """
        if not senders:
            raise ValueError("a text needs at least one sender")
        async with self.store.transaction("enqueue") as db:
            cur = await db.execute(
                """INSERT INTO outbox (call_id, kind, number, did, body, template, encoding,
                       parts, senders, state, not_before, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)
                   ON CONFLICT (call_id, kind) DO NOTHING""",
                (call_id, kind, number, did, body, template, encoding, parts,
                 json.dumps(list(senders)), not_before, now, now))
            if cur.rowcount == 0:
                async with db.execute("SELECT id, state FROM outbox WHERE call_id = ? AND "
                                      "kind = ?", (call_id, kind)) as c:
                    row = await c.fetchone()
                assert row is not None
                return EnqueueResult(row["id"], False, row["state"])
            new_id = cur.lastrowid
            assert new_id is not None
            if call_id is not None:
                await db.execute("UPDATE calls SET decision = 'text', decision_at = ? "
                                 "WHERE call_id = ? AND decision IS NULL", (now, call_id))
        return EnqueueResult(new_id, True, "queued")

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
        async with self.store.transaction("claim_next") as db:
            async with db.execute(
                f"SELECT * FROM outbox WHERE {where} ORDER BY not_before, id LIMIT 1",
                params) as c:
                row = await c.fetchone()
            if row is None:
                return None
            await db.execute(
                "UPDATE outbox SET state = 'sending', claimed_at = ?, updated_at = ?, "
                "attempts = attempts + 1 WHERE id = ?", (now, now, row["id"]))
            async with db.execute("SELECT * FROM outbox WHERE id = ?", (row["id"],)) as c:
                claimed = await c.fetchone()
        return _item(claimed)

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
            cur = await db.execute(
                """INSERT INTO messages (direction, number, did, body, parts, encoding,
                       status, sender, call_id, outbox_id, created_at, sent_at)
                   VALUES ('out', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (row["number"], row["did"], row["body"], parts, row["encoding"], status,
                 sender, row["call_id"], item_id, row["created_at"], now))
            message_id = cur.lastrowid
            assert message_id is not None
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
        async with self.store.transaction("release") as db:
            await db.execute(
                "UPDATE outbox SET state = 'queued', not_before = ?, last_error = ?, "
                "attempts = max(attempts - 1, 0), handed_at = NULL, updated_at = ? "
                "WHERE id = ? AND state = 'sending'", (not_before, reason, now, item_id))

    async def cancel(self, item_id: int, reason: str, now: float) -> bool:
        """Cancel a row still queued; False when it is already sending or done."""
        async with self.store.transaction("cancel") as db:
            return await self._cancel_where(db, "id = ?", (item_id,), reason, now) > 0

    async def cancel_for_number(self, number: str, reason: str, now: float,
                                did: str | None = None) -> int:
        """Cancel every queued text to ``number`` (caller reached, opted out); how many."""
        where, params = "number = ?", [number]
        if did is not None:
            where += " AND did = ?"
            params.append(did)
        async with self.store.transaction("cancel_for_number") as db:
            return await self._cancel_where(db, where, params, reason, now)

    async def _cancel_where(self, db: Any, where: str, params: Any, reason: str,
                            now: float) -> int:
        cur = await db.execute(
            f"UPDATE outbox SET state = 'cancelled', cancel_reason = ?, updated_at = ? "
            f"WHERE state = 'queued' AND {where} RETURNING id, call_id, kind",
            (reason, now, *params))
        rows = list(await cur.fetchall())
        for _id, call_id, kind in rows:
            if call_id is not None and kind == "textback":
                await db.execute(
                    "UPDATE calls SET decision = 'cancelled', skip_reason = ?, "
                    "decision_at = ? WHERE call_id = ?", (reason, now, call_id))
        return len(rows)

    async def mark_handed(self, item_id: int, now: float) -> None:
        """The sender is about to commit the text to the channel (the modem's Ctrl-Z, the
        PBX action): from here on a crash leaves it unconfirmed rather than requeued."""
        async with self.store.transaction("mark_handed") as db:
            await db.execute("UPDATE outbox SET handed_at = ?, updated_at = ? "
                             "WHERE id = ? AND state = 'sending'", (now, now, item_id))

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
                await db.execute("UPDATE messages SET status = ?, delivered_at = ? WHERE id = ?",
                                 (final, now if final == "delivered" else None, message_id))
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
