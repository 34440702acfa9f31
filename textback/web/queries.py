"""What the inbox and a conversation page show, read from the store (reads only).

The web app reads through its own read-only connection (``Store.open(readonly=True)``, WAL:
readers never wait for the writer and the writer never waits for them), so a page being
rendered, or a live-update client polling, costs the send path nothing. Every query here is
an indexed lookup by number, conversation or id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textback.store import Store


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    number: str
    did: str
    code: str
    last_activity_at: float
    unread: int
    last_body: str | None
    last_direction: str | None
    opted_out: bool
    review: bool
    taken_over_by: str | None
    outcome: str | None


_INBOX = """
SELECT c.id, c.number, c.did, c.code,
       max(c.last_activity_at, coalesce(d.staff_at, 0)) AS last_activity_at,
       d.taken_over_by, d.outcome,
       (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'in'
          AND m.created_at > coalesce(d.read_at, 0)) AS unread,
       coalesce((SELECT o.opted_out FROM opt_outs o WHERE o.number = c.number), 0) AS opted_out,
       EXISTS (SELECT 1 FROM optout_reviews r WHERE r.number = c.number
                  AND r.state = 'pending') AS review
  FROM conversations c LEFT JOIN conversation_desk d ON d.conversation_id = c.id
 ORDER BY max(c.last_activity_at, coalesce(d.staff_at, 0)) DESC, c.id DESC LIMIT :limit
"""


async def inbox(store: Store, limit: int = 200) -> list[InboxItem]:
    """Conversations, most recently active first, with their unread replies."""
    rows = await store.fetchall(_INBOX, {"limit": limit})
    out = []
    for r in rows:
        last = await store.fetchone(
            "SELECT direction, body FROM messages WHERE number = ? AND (did = ? OR did IS NULL) "
            "ORDER BY created_at DESC, id DESC LIMIT 1", (r["number"], r["did"]))
        out.append(InboxItem(r["id"], r["number"], r["did"], r["code"], r["last_activity_at"],
                             int(r["unread"]), last["body"] if last else None,
                             last["direction"] if last else None, bool(r["opted_out"]),
                             bool(r["review"]), r["taken_over_by"], r["outcome"]))
    return out


@dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    at: float
    did: str | None
    verdict: str
    reason: str
    ring_s: float
    voicemail_left: bool
    decision: str | None
    skip_reason: str | None


@dataclass(frozen=True, slots=True)
class Text:
    """One text of the thread, either way, with its delivery state."""

    direction: str  # in | out
    at: float
    body: str
    state: str  # received | queued | sending | sent | delivered | failed | unconfirmed ...
    kind: str | None = None  # the outbox kind of a text we sent (textback, relay ...)
    detail: str | None = None  # why refused / cancelled / failed


@dataclass(frozen=True, slots=True)
class FollowUp:
    touch: int
    due_at: float


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    body: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ConversationView:
    id: int
    number: str
    did: str
    code: str
    opened_at: float
    calls: list[Call]
    started_by: Call | None  # the missed call it started from
    texts: list[Text]
    follow_ups: list[FollowUp]
    opted_out: bool
    review: Review | None
    taken_over_by: str | None
    taken_over_at: float | None
    outcome: str | None


def _out_state(outbox_state: str, message_status: str | None) -> str:
    if message_status in ("delivered", "failed"):
        return message_status
    if message_status == "sent-unconfirmed" or outbox_state == "unconfirmed":
        return "unconfirmed"
    return outbox_state


async def conversation(store: Store, conversation_id: int) -> ConversationView | None:
    c = await store.fetchone(
        "SELECT c.*, d.taken_over_by, d.taken_over_at, d.outcome FROM conversations c "
        "LEFT JOIN conversation_desk d ON d.conversation_id = c.id WHERE c.id = ?",
        (conversation_id,))
    if c is None:
        return None
    number, did = c["number"], c["did"]
    calls = [Call(r["call_id"], r["t"], r["did"], r["verdict"], r["reason"], r["ring_s"],
                  bool(r["voicemail_left"]), r["decision"], r["skip_reason"])
             for r in await store.fetchall(
                 "SELECT call_id, coalesce(ended_at, decided_at) AS t, did, verdict, reason, "
                 "ring_s, voicemail_left, decision, skip_reason FROM calls WHERE caller = ? "
                 "AND did = ? AND direction = 'inbound' ORDER BY decided_at DESC LIMIT 20",
                 (number, did))]
    started_by = next((k for k in calls if k.verdict == "missed" and k.at <= c["opened_at"]),
                      None)
    texts = [Text("in", r["created_at"], r["body"], "received") for r in await store.fetchall(
        "SELECT created_at, body FROM messages WHERE number = ? AND (did = ? OR did IS NULL) "
        "AND direction = 'in'", (number, did))]
    texts += [Text("out", r["created_at"], r["body"], _out_state(r["state"], r["status"]),
                   r["kind"], r["cancel_reason"] or r["last_error"])
              for r in await store.fetchall(
                  "SELECT o.created_at, o.body, o.kind, o.state, o.cancel_reason, o.last_error, "
                  "m.status FROM outbox o LEFT JOIN messages m ON m.id = o.message_id "
                  "WHERE o.number = ? AND (o.did = ? OR o.did IS NULL)", (number, did))]
    texts += [Text("out", r["created_at"], r["body"], _out_state("sent", r["status"]))
              for r in await store.fetchall(
                  "SELECT created_at, body, status FROM messages WHERE number = ? AND "
                  "(did = ? OR did IS NULL) AND direction = 'out' AND outbox_id IS NULL",
                  (number, did))]
    texts.sort(key=lambda t: t.at)
    follow_ups = [FollowUp(r["touch"], r["due_at"]) for r in await store.fetchall(
        "SELECT touch, due_at FROM follow_ups WHERE number = ? AND did = ? "
        "AND state = 'scheduled' ORDER BY due_at", (number, did))]
    opt = await store.fetchone("SELECT opted_out FROM opt_outs WHERE number = ?", (number,))
    rv = await store.fetchone(
        "SELECT r.id, r.created_at, m.body FROM optout_reviews r JOIN messages m "
        "ON m.id = r.message_id WHERE r.number = ? AND r.state = 'pending' "
        "ORDER BY r.id DESC LIMIT 1", (number,))
    return ConversationView(
        c["id"], number, did, c["code"], c["opened_at"], calls, started_by, texts, follow_ups,
        bool(opt and opt["opted_out"]),
        Review(rv["id"], rv["body"], rv["created_at"]) if rv else None,
        c["taken_over_by"], c["taken_over_at"], c["outcome"])


async def change_mark(store: Store, number: str | None) -> str:
    """A short fingerprint of what a live page shows: it changes when a text arrives, an
    outbox row moves, or the desk marks change (one conversation's ``number``, or the whole
    inbox when None). Three indexed aggregates; the live-update endpoint polls it."""
    if number is None:
        row: Any = await store.fetchone(
            "SELECT (SELECT max(id) FROM messages WHERE direction = 'in'), "
            "(SELECT count(*) FROM conversations), "
            "(SELECT max(coalesce(outcome_at, 0)) + count(taken_over_by) "
            "   + max(coalesce(read_at, 0)) FROM conversation_desk)")
    else:
        row = await store.fetchone(
            "SELECT (SELECT max(id) FROM messages WHERE number = :n), "
            "(SELECT max(updated_at) || '/' || count(*) FROM outbox WHERE number = :n), "
            "(SELECT count(*) FROM optout_reviews WHERE number = :n AND state = 'pending')",
            {"n": number})
    return "|".join(str(v) for v in tuple(row)) if row is not None else ""
