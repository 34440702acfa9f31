"""Signed webhooks: how a CRM, n8n, Home Assistant or a ticket system hears about leads.

Each event (``call.missed``, ``text.sent``, ``text.delivered``, ``text.failed``,
``reply.received``, ``optout``, ``optin``, ``conversation.outcome``) is written to the store
(``webhook_deliveries``, this module its only writer) right after the fact it reports, one
row per subscribed ``[[webhook]]``, and POSTed from there by :class:`WebhookDelivery`, a task
of its own. So a hook that is down, slow or refusing never slows texting: the code that
sends texts only ever does one local INSERT, and a restart loses nothing that was queued.

Bodies have a versioned schema (``"schema": "textback.webhook/1"``, ``event``, ``id``,
``occurred_at``, ``data``; docs/webhooks.md) and are signed as Stripe and GitHub sign
theirs: ``Textback-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the
hook's own secret, so a receiver can check both who sent it and that it is fresh.

Delivery is at least once, never knowingly twice: a row is marked delivered as soon as the
receiver answers 2xx; a failure is retried with exponential backoff (10 s doubling to 1 h)
until ``give_up_after_h`` after the event, across restarts. Only a crash between the
receiver's 2xx and the row's commit sends an event again, with the same ``id`` (receivers
drop ids they have seen). Each row's ``fact`` ("message:42") is unique per event and hook,
so emitting the same fact twice (a reply resumed after a restart, a redecided call) queues
nothing new.

The emit functions (``call_missed``, ``text_sent`` ...) take the hub or None, read what
they report from the store and never raise into the caller: each call site is one line.
In-process observers (the Prometheus send-latency histogram, textback.web.metrics) see every
event, also when no webhook is configured.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

from textback.config import WEBHOOK_EVENTS, WebhookConfig
from textback.logfmt import log
from textback.store import Store, StoreUnavailable

logger = logging.getLogger("textback.webhooks")

SCHEMA = "textback.webhook/1"
SIGNATURE_HEADER = "Textback-Signature"
USER_AGENT = "textback-webhooks/1"
RETRY_BASE_S = 10.0
RETRY_MAX_S = 3600.0
# events that could not be written while the store was unavailable, kept in memory (in
# order) and written by the delivery loop once it is back; beyond this many the oldest go
BACKLOG_MAX = 10_000

Observer = Callable[[str, Mapping[str, Any]], None]


# --------------------------------------------------------------------------- signing


def sign(secret: str, body: bytes, t: int) -> str:
    """The ``Textback-Signature`` value for ``body`` sent at unix time ``t``."""
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: float | None = None,
           tolerance_s: float = 300.0) -> bool:
    """What a receiver does (docs/webhooks.md has the same code): the header's ``v1``
    matches the HMAC of ``"<t>.<body>"`` and ``t`` is within ``tolerance_s`` of now."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        t = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


def iso(ts: float | None) -> str | None:
    """Unix time → ``2026-12-02T15:22:43.120Z`` (UTC), the form every body uses."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def body_for(event: str, event_id: str, at: float, data: Mapping[str, Any]) -> str:
    """The JSON every hook gets for one event (the schema in docs/webhooks.md)."""
    return json.dumps({"schema": SCHEMA, "event": event, "id": event_id,
                       "occurred_at": iso(at), "data": data},
                      ensure_ascii=False, separators=(",", ":"), default=str)


# --------------------------------------------------------------------------- the hub


class Webhooks:
    """Turns facts into queued deliveries (and tells in-process observers).

    The daemon makes one at start (``store`` set once the store is open) and hands it to the
    pipeline, the dispatcher and the inbound handler as their ``hooks``.
    """

    def __init__(self, hooks: Sequence[WebhookConfig], *, clock: Callable[[], float],
                 store: Store | None = None) -> None:
        self.hooks = tuple(hooks)
        self.clock = clock
        self.store = store
        self.observers: list[Observer] = []
        self.on_queued: Callable[[], None] = lambda: None  # the delivery loop's wake
        self._backlog: collections.deque[tuple[str, str, str, str, float]] = \
            collections.deque(maxlen=BACKLOG_MAX)
        self.emitted = 0

    def subscribers(self, event: str) -> list[WebhookConfig]:
        return [h for h in self.hooks if event in h.events]

    def wants(self, event: str) -> bool:
        """Anyone to tell (a hook or an observer)? If not, the emitters read nothing."""
        return self.store is not None and (bool(self.observers)
                                           or bool(self.subscribers(event)))

    async def emit(self, event: str, fact: str, data: Mapping[str, Any], *,
                   at: float) -> int:
        """Queue ``event`` about ``fact`` for every hook that wants it; how many rows were
        written (0 for a fact already queued). Never raises: a store outage keeps the event
        in memory for the delivery loop to write later."""
        if event not in WEBHOOK_EVENTS:
            raise ValueError(f"unknown webhook event {event!r}")
        self.emitted += 1
        for observer in self.observers:
            try:
                observer(event, data)
            except Exception as exc:  # an observer's bug must not cost the event
                log(logger, logging.ERROR, "webhook_observer_failed", hook_event=event,
                    error=f"{type(exc).__name__}: {exc}"[:200])
        if not self.subscribers(event) or self.store is None:
            return 0
        event_id = "evt_" + uuid.uuid4().hex
        item = (event, fact, event_id, body_for(event, event_id, at, data), at)
        try:
            await self.flush()
            written = await self._write(*item)
        except StoreUnavailable as exc:
            self._backlog.append(item)
            log(logger, logging.WARNING, "webhook_event_held", hook_event=event, fact=fact,
                kind=exc.kind, held=len(self._backlog))
            return 0
        self.on_queued()
        return written

    async def flush(self) -> int:
        """Write the events held during a store outage, oldest first; how many."""
        n = 0
        while self._backlog:
            await self._write(*self._backlog[0])
            self._backlog.popleft()
            n += 1
        return n

    async def _write(self, event: str, fact: str, event_id: str, body: str,
                     at: float) -> int:
        assert self.store is not None
        written = 0
        now = self.clock()  # due now; ``at`` (when it happened) is in the body
        async with self.store.transaction("queue webhook") as db:
            for hook in self.subscribers(event):
                cur = await db.execute(
                    "INSERT OR IGNORE INTO webhook_deliveries (event_id, event, fact, hook, "
                    "body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event_id, event, fact, hook.key, body, now, now))
                written += cur.rowcount
        if written:
            log(logger, logging.INFO, "webhook_queued", hook_event=event, id=event_id, fact=fact,
                hooks=written)
        return written


async def _emit(hooks: Webhooks | None, event: str, fact: str,
                build: Callable[[Store], Any], at: float) -> None:
    """Build the data (reads only) and emit; any failure is logged, never raised."""
    if hooks is None or hooks.store is None or not hooks.wants(event):
        return
    try:
        data = await build(hooks.store)
        if data is not None:
            await hooks.emit(event, fact, data, at=at)
    except Exception as exc:  # the caller is texting: an event is never worth a text
        log(logger, logging.ERROR, "webhook_emit_failed", hook_event=event, fact=fact,
            error=f"{type(exc).__name__}: {exc}"[:200])


# --------------------------------------------------------------------------- the events


def _call(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row["call_id"], "caller": row["caller"], "withheld": bool(row["withheld"]),
            "did": row["did"], "verdict": row["verdict"], "reason": row["reason"],
            "ring_s": row["ring_s"], "voicemail_left": bool(row["voicemail_left"]),
            "started_at": iso(row["started_at"]), "ended_at": iso(row["ended_at"])}


async def call_missed(hooks: Webhooks | None, call_id: str, *, at: float) -> None:
    """A missed inbound call was recorded (before the policy decides whether to text)."""
    async def build(store: Store) -> Any:
        row = await store.fetchone("SELECT * FROM calls WHERE call_id = ? AND "
                                   "direction = 'inbound' AND verdict = 'missed'", (call_id,))
        return None if row is None else {"call": _call(row)}
    await _emit(hooks, "call.missed", f"call:{call_id}", build, at)


_TEXT_SQL = ("SELECT o.*, m.status AS message_status, m.parts AS message_parts, "
             "m.delivered_at, c.ended_at AS call_ended_at, c.decided_at AS call_decided_at "
             "FROM outbox o LEFT JOIN messages m ON m.id = o.message_id "
             "LEFT JOIN calls c ON c.call_id = o.call_id WHERE o.{key} = ?")


def _text(row: Any) -> dict[str, Any]:
    return {"outbox_id": row["id"], "message_id": row["message_id"], "kind": row["kind"],
            "number": row["number"], "did": row["did"], "call_id": row["call_id"],
            "body": row["body"], "sender": row["sent_by"], "parts": row["message_parts"]}


async def text_sent(hooks: Webhooks | None, outbox_id: int, *, at: float) -> None:
    """The dispatcher's sent path: a sender took the text. For the first text of a missed
    call, ``latency_s`` is hang-up → handed to the sender (the metrics histogram's value)."""
    async def build(store: Store) -> Any:
        row = await store.fetchone(_TEXT_SQL.format(key="id"), (outbox_id,))
        if row is None or row["message_id"] is None:
            return None
        hung_up = row["call_ended_at"] or row["call_decided_at"]
        handed = row["handed_at"] or row["sent_at"]
        latency = (round(max(0.0, handed - hung_up), 3)
                   if row["kind"] == "textback" and hung_up is not None and handed else None)
        return {"text": {**_text(row), "sent_at": iso(row["sent_at"]),
                         "confirmed": row["message_status"] == "sent"},
                "latency_s": latency}
    await _emit(hooks, "text.sent", f"outbox:{outbox_id}", build, at)


async def text_failed(hooks: Webhooks | None, outbox_id: int, *, at: float) -> None:
    """After a failed send: an event only when the row failed for good (no sender left)."""
    async def build(store: Store) -> Any:
        row = await store.fetchone(_TEXT_SQL.format(key="id"), (outbox_id,))
        if row is None or row["state"] != "failed":
            return None
        return {"text": {**_text(row), "stage": "send", "error": row["last_error"]}}
    await _emit(hooks, "text.failed", f"outbox:{outbox_id}", build, at)


async def delivery_report(hooks: Webhooks | None, message_id: int | None, *,
                          at: float) -> None:
    """After a delivery report: ``text.delivered`` once every part is delivered,
    ``text.failed`` (stage ``delivery``) when the network reported a part failed."""
    if message_id is None or hooks is None or hooks.store is None or not (
            hooks.wants("text.delivered") or hooks.wants("text.failed")):
        return
    row = None
    with contextlib.suppress(Exception):
        row = await hooks.store.fetchone(_TEXT_SQL.format(key="message_id"), (message_id,))
    if row is None or row["message_status"] not in ("delivered", "failed"):
        return
    delivered = row["message_status"] == "delivered"

    async def build(store: Store) -> Any:
        assert row is not None
        extra = ({"delivered_at": iso(row["delivered_at"])} if delivered
                 else {"stage": "delivery", "error": "the network reported it undelivered"})
        return {"text": {**_text(row), **extra}}
    await _emit(hooks, "text.delivered" if delivered else "text.failed",
                f"message:{message_id}", build, at)


async def reply_received(hooks: Webhooks | None, message_id: int, *, klass: str,
                         at: float) -> None:
    """A customer's text, stored (staff phones' texts are not replies). ``klass`` is the
    keyword class: optout, optin, help, possible-optout or none."""
    async def build(store: Store) -> Any:
        row = await store.fetchone(
            "SELECT m.*, c.code, c.call_id AS conversation_call FROM messages m "
            "LEFT JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?",
            (message_id,))
        if row is None:
            return None
        return {"message": {"id": row["id"], "number": row["number"], "did": row["did"],
                            "body": row["body"], "via": row["sender"],
                            "received_at": iso(row["created_at"]), "class": klass},
                "conversation": None if row["conversation_id"] is None else {
                    "id": row["conversation_id"], "code": row["code"]}}
    await _emit(hooks, "reply.received", f"message:{message_id}", build, at)


async def opt_changed(hooks: Webhooks | None, number: str, opted_out: bool, *,
                      did: str | None, message_id: int | None, source: str,
                      at: float) -> None:
    """A number opted out (``optout``) or back in (``optin``)."""
    async def build(store: Store) -> Any:
        return {"number": number, "did": did, "message_id": message_id, "source": source}
    fact = f"message:{message_id}" if message_id is not None else f"{number}@{at!r}"
    await _emit(hooks, "optout" if opted_out else "optin", fact, build, at)


OUTCOMES = ("booked", "callback-done", "not-a-lead", "spam")


async def emit_conversation_outcome(hooks: Webhooks | None, conversation_id: int,
                                    outcome: str, *, by: str, at: float) -> None:
    """For the web inbox: staff marked what came of a conversation (``OUTCOMES``), ``by``
    the user's name. Each change is one event."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r} (one of {', '.join(OUTCOMES)})")

    async def build(store: Store) -> Any:
        row = await store.fetchone("SELECT * FROM conversations WHERE id = ?",
                                   (conversation_id,))
        if row is None:
            return None
        return {"conversation": {"id": row["id"], "code": row["code"],
                                 "number": row["number"], "did": row["did"],
                                 "call_id": row["call_id"]},
                "outcome": outcome, "by": by}
    await _emit(hooks, "conversation.outcome", f"conversation:{conversation_id}@{at!r}",
                build, at)


# --------------------------------------------------------------------------- delivery


class WebhookDelivery:
    """The loop that POSTs queued events: its own task, bounded concurrency.

    At most ``concurrency`` requests at once and ``per_hook`` to any one hook, each limited
    by the hook's ``timeout_s``, so a hook that hangs holds two slots and nothing else.
    """

    def __init__(self, store: Store, hooks: Sequence[WebhookConfig], *,
                 clock: Callable[[], float], hub: Webhooks | None = None,
                 retry_base_s: float = RETRY_BASE_S, retry_max_s: float = RETRY_MAX_S,
                 concurrency: int = 4, per_hook: int = 2, max_sleep_s: float = 60.0) -> None:
        self.store = store
        self.hooks = {h.key: h for h in hooks}
        self.clock = clock
        self.hub = hub
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.concurrency = concurrency
        self.per_hook = per_hook
        self.max_sleep_s = max_sleep_s
        self._kick = asyncio.Event()
        self._in_flight: dict[int, str] = {}  # row id → hook key
        # rows whose attempt ended while a read of the due rows was under way: that read
        # may predate the attempt's commit, so its copy of them is stale
        self._ended: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.failed_attempts = 0
        if hub is not None:
            hub.on_queued = self.wake

    def wake(self) -> None:
        self._kick.set()

    def backoff(self, attempts: int) -> float:
        return min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1))

    async def run(self) -> None:
        """Forever: start what is due (within the limits), then sleep until the next row is
        due, a new event is queued or a request finishes."""
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            try:
                while True:
                    self._kick.clear()
                    try:
                        if self.hub is not None:
                            await self.hub.flush()
                        await self._start_due(session)
                        due = await self._next_due_at()
                    except StoreUnavailable as exc:
                        log(logger, logging.WARNING, "webhook_store_unavailable",
                            kind=exc.kind)
                        due = self.clock() + self.retry_base_s
                    delay = self.max_sleep_s if due is None else min(
                        self.max_sleep_s, max(0.0, due - self.clock()))
                    # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancel
                    # that lands as the kick is set, and the loop would never stop
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(delay, 0.01)):
                            await self._kick.wait()
            finally:
                for task in list(self._tasks):
                    task.cancel()
                for task in list(self._tasks):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def _waiting(self) -> tuple[str, list[Any]]:
        """SQL (and its parameters) leaving out the rows in flight and the rows of hooks
        at their ``per_hook`` limit: a finishing request wakes the loop for those, and a
        backlog of one slow hook's rows never hides another hook's behind it."""
        busy = collections.Counter(self._in_flight.values())
        full = [key for key, n in busy.items() if n >= self.per_hook]
        ids = list(self._in_flight)
        sql = (f" AND id NOT IN ({','.join('?' * len(ids))})" if ids else "") + \
            (f" AND hook NOT IN ({','.join('?' * len(full))})" if full else "")
        return sql, [*ids, *full]

    async def _next_due_at(self) -> float | None:
        if len(self._in_flight) >= self.concurrency:
            return None  # a finishing request wakes the loop
        sql, params = self._waiting()
        row = await self.store.fetchone(
            "SELECT min(next_attempt_at) AS t FROM webhook_deliveries WHERE state = "
            f"'queued'{sql}", params)
        return row["t"] if row else None

    async def _start_due(self, session: aiohttp.ClientSession) -> int:
        free = self.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        now = self.clock()
        self._ended.clear()
        sql, params = self._waiting()
        rows = await self.store.fetchall(
            f"SELECT * FROM webhook_deliveries WHERE state = 'queued' AND next_attempt_at <= ?"
            f"{sql} ORDER BY next_attempt_at, id LIMIT ?", (now, *params, self.concurrency * 8))
        started = 0
        for row in rows:
            if row["id"] in self._in_flight or row["id"] in self._ended:
                continue
            if started >= free:
                break
            hook = self.hooks.get(row["hook"])
            if hook is None:
                await self._finish(row, "failed", "the hook is no longer configured", now)
                continue
            if sum(1 for k in self._in_flight.values() if k == hook.key) >= self.per_hook:
                continue
            self._in_flight[row["id"]] = hook.key
            task = asyncio.create_task(self._attempt(session, hook, dict(row)))
            self._tasks.add(task)
            task.add_done_callback(self._done(row["id"], task))
            started += 1
        return started

    def _done(self, row_id: int, task: asyncio.Task[None]) -> Callable[[Any], None]:
        def done(_: Any) -> None:
            self._tasks.discard(task)
            self._in_flight.pop(row_id, None)
            self._ended.add(row_id)
            self.wake()
        return done

    async def _attempt(self, session: aiohttp.ClientSession, hook: WebhookConfig,
                       row: dict[str, Any]) -> None:
        body = row["body"].encode("utf-8")
        attempt = row["attempts"] + 1
        headers = {"Content-Type": "application/json",
                   "Textback-Event": row["event"], "Textback-Event-Id": row["event_id"],
                   "Textback-Attempt": str(attempt),
                   SIGNATURE_HEADER: sign(hook.secret.reveal(), body, int(self.clock()))}
        error: str | None = None
        try:
            async with session.post(hook.url.reveal(), data=body, headers=headers,
                                    allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=hook.timeout_s)
                                    ) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    error = f"HTTP {resp.status}"
        except TimeoutError:
            error = f"no answer within {hook.timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            # the exception's text may quote the URL: name the class only
            error = type(exc).__name__
        now = self.clock()
        try:
            if error is None:
                await self._finish(row, "delivered", None, now)
                self.delivered += 1
                log(logger, logging.INFO, "webhook_delivered", hook=hook.key, host=hook.host,
                    hook_event=row["event"], id=row["event_id"], attempt=attempt)
                return
            self.failed_attempts += 1
            await self._retry_or_give_up(hook, row, error, now)
        except StoreUnavailable as exc:  # the row stays queued: tried again later
            log(logger, logging.WARNING, "webhook_store_unavailable", kind=exc.kind,
                id=row["event_id"])

    async def _retry_or_give_up(self, hook: WebhookConfig, row: Mapping[str, Any],
                                error: str, now: float) -> None:
        attempts = row["attempts"] + 1
        if now - row["created_at"] >= hook.give_up_after_s:
            await self._finish(row, "failed", error, now)
            log(logger, logging.ERROR, "webhook_given_up", hook=hook.key, host=hook.host,
                hook_event=row["event"], id=row["event_id"], attempts=attempts,
                hours=round((now - row["created_at"]) / 3600, 1), error=error)
            return
        delay = self.backoff(attempts)
        async with self.store.transaction("retry webhook") as db:
            await db.execute(
                "UPDATE webhook_deliveries SET attempts = ?, last_error = ?, "
                "next_attempt_at = ? WHERE id = ? AND state = 'queued'",
                (attempts, error, now + delay, row["id"]))
        log(logger, logging.WARNING, "webhook_failed", hook=hook.key, host=hook.host,
            hook_event=row["event"], id=row["event_id"], attempt=attempts,
            retry_in_s=round(delay, 1), error=error)

    async def _finish(self, row: Any, state: str, error: str | None,
                      now: float) -> None:
        async with self.store.transaction(f"webhook {state}") as db:
            await db.execute(
                "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, "
                "last_error = ?, delivered_at = ? WHERE id = ? AND state = 'queued'",
                (state, error, now if state == "delivered" else None, row["id"]))

    async def counts(self) -> dict[str, int]:
        rows = await self.store.fetchall(
            "SELECT state, count(*) AS n FROM webhook_deliveries GROUP BY state")
        return {r["state"]: r["n"] for r in rows}
