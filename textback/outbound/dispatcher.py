"""The outbox worker: hands due texts to senders, one text at a time per sender.

A row is claimed (marked ``sending``) only when its sender is idle and available, so every
``sending`` row found after a crash really was being sent — the one window the outbox
reports as unconfirmed. Each sender works its own rows in order; different senders (two
modems, a modem and SIP) work in parallel. A sender that stays unavailable longer than
``handover_after_s`` (a modem unplugged) hands its due rows to the next sender of each row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from textback import webhooks
from textback.logfmt import log
from textback.outbound.outbox import Outbox, OutboxItem
from textback.sender import Sender, SendError
from textback.store import StoreUnavailable

logger = logging.getLogger("textback.outbound.dispatcher")

T = TypeVar("T")


class Dispatcher:
    """The only code that moves outbox rows from ``queued`` to a sender.

    One worker per sender, because a modem takes one AT+CMGS at a time and a row claimed
    while its sender is busy would be reported "unconfirmed" after a crash without ever having
    reached it. Woken through ``wake`` when a row is queued (so a text leaves within
    milliseconds, not at the next poll) and otherwise sleeps until the next row is due. A
    ``SendError`` decides what happens next: transient, the row waits and is retried;
    permanent, the row goes to the next sender of its DID; an error after the sender's
    ``commit`` (the point of no return) is recorded unconfirmed and never resent blindly.
    """

    def __init__(self, outbox: Outbox, senders: Mapping[str, Sender], *,
                 clock: Callable[[], float], handover_after_s: float = 30.0,
                 idle_poll_s: float = 60.0) -> None:
        self.outbox = outbox
        self.senders = dict(senders)
        self.clock = clock
        self.handover_after_s = handover_after_s
        self.idle_poll_s = idle_poll_s
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unavailable_since: dict[str, float] = {}
        self._unknown_checked_at = float("-inf")  # see _hand_over
        self._wake = asyncio.Event()
        self._stopping = False
        self.sent = 0
        self.failed = 0
        self.hooks: webhooks.Webhooks | None = None  # text.sent / text.failed

    def reconfigure(self, handover_after_s: float) -> None:
        """A reloaded ``[policy] handover_after_s`` (SIGHUP)."""
        self.handover_after_s = handover_after_s

    def wake(self) -> None:
        """Something changed (a row queued, a sender came back): look again now."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def _idle_senders(self, now: float) -> set[str]:
        idle = set()
        for name, sender in self.senders.items():
            if sender.available():
                self._unavailable_since.pop(name, None)
                if name not in self._busy:
                    idle.add(name)
            else:
                self._unavailable_since.setdefault(name, now)
        return idle

    async def _hand_over(self, now: float) -> None:
        """Rows whose sender is unknown or long unavailable go to their next sender.

        While every sender is available the due-senders query (a store read on the way of
        every text) can only find rows of an unknown sender (the config lost one): that is
        looked for at start and then every ``handover_after_s``, not on every pump."""
        if not self._unavailable_since and now < self._unknown_checked_at \
                + self.handover_after_s:
            return
        if not self._unavailable_since:
            self._unknown_checked_at = now
        gone = {name for name in await self.outbox.due_senders(now)
                if name not in self.senders
                or now - self._unavailable_since.get(name, now) >= self.handover_after_s}
        if not gone:
            return
        while (item := await self.outbox.claim_next(now, senders=gone)) is not None:
            unknown = item.sender not in self.senders
            why = ("no such sender configured" if unknown
                   else f"unavailable for over {self.handover_after_s:g} s")
            if not unknown and item.sender_index + 1 >= len(item.senders):
                # its only remaining sender is away (modem unplugged, SIM locked): failing it
                # would lose the text; it waits for the sender to come back
                await self.outbox.release(item.id, f"{item.sender}: {why}; waiting for it",
                                          now + self.handover_after_s, now)
                log(logger, logging.WARNING, "text_waiting_for_sender", outbox=item.id,
                    sender=item.sender, why=why)
                continue
            result = await self.outbox.mark_failed(item.id, why, permanent=True, now=now)
            log(logger, logging.WARNING, "text_handed_over", outbox=item.id,
                sender=item.sender, why=why, next=result.sender, state=result.state)

    async def pump(self) -> int:
        """Start every due text an idle sender can take; how many were started."""
        now = self.clock()
        self._idle_senders(now)  # refresh who is away before deciding what to hand over
        await self._hand_over(now)
        started = 0
        while not self._stopping:
            idle = self._idle_senders(now)
            if not idle:
                break
            item = await self.outbox.claim_next(now, senders=idle)
            if item is None:
                break
            name = item.sender or ""
            self._busy.add(name)
            task = asyncio.create_task(self._send(self.senders[name], item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _send(self, sender: Sender, item: OutboxItem) -> None:
        try:
            log(logger, logging.INFO, "text_sending", outbox=item.id, sender=sender.name,
                number=item.number, call=item.call_id, attempt=item.attempts)
            handed: list[bool] = []

            async def commit() -> None:
                try:
                    await self.outbox.mark_handed(item.id, self.clock())
                    handed.append(True)
                except StoreUnavailable as exc:
                    # not recorded as handed: do not hand it, or a crash could resend it
                    raise SendError(sender.name, f"store unavailable ({exc.kind}): not "
                                    "handed to the channel", permanent=False) from exc

            try:
                result = await sender.send(item.number, item.body, status_report=True,
                                           did=item.did, on_commit=commit)
            except SendError as exc:
                self.failed += 1
                error = exc
                outcome = await self._retry_store(lambda: self.outbox.mark_failed(
                    item.id, error.reason, permanent=error.permanent, now=self.clock()))
                log(logger, logging.WARNING, "text_failed", outbox=item.id,
                    sender=sender.name, reason=error.reason, permanent=error.permanent,
                    next=outcome.sender, state=outcome.state)
                await webhooks.text_failed(self.hooks, item.id, at=self.clock())
                return
            except Exception as exc:  # a sender bug must not leave the row 'sending' for good
                self.failed += 1
                failure = f"unexpected {type(exc).__name__}: {exc}"
                if handed:  # the channel may have it: never resend, record it unconfirmed
                    await self._retry_store(lambda: self.outbox.mark_sent(
                        item.id, [], sender.name, self.clock(), tracked=False))
                    log(logger, logging.ERROR, "text_unconfirmed", outbox=item.id,
                        sender=sender.name, reason=failure)
                    return
                outcome = await self._retry_store(lambda: self.outbox.mark_failed(
                    item.id, failure, permanent=False, now=self.clock()))
                log(logger, logging.ERROR, "text_failed", outbox=item.id, sender=sender.name,
                    reason=failure, permanent=False, next=outcome.sender, state=outcome.state)
                await webhooks.text_failed(self.hooks, item.id, at=self.clock())
                return
            refs = [r for r in result.refs if r is not None]
            await self._retry_store(lambda: self.outbox.mark_sent(
                item.id, refs, sender.name, self.clock(), tracked=result.confirmed))
            self.sent += 1
            log(logger, logging.INFO, "text_sent", outbox=item.id, sender=sender.name,
                number=item.number, call=item.call_id, parts=result.parts,
                mr=",".join(str(r) for r in result.refs), confirmed=result.confirmed)
            await webhooks.text_sent(self.hooks, item.id, at=self.clock())
        finally:
            self._busy.discard(sender.name)
            self.wake()

    async def _retry_store(self, op: Callable[[], Awaitable[T]]) -> T:
        """A text that went out MUST be recorded: retry through a locked or full store."""
        delay = 0.5
        while True:
            try:
                return await op()
            except StoreUnavailable as exc:
                log(logger, logging.ERROR, "store_unavailable", kind=exc.kind,
                    error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)

    async def run(self) -> None:
        """Pump whenever woken or when the next queued row falls due; never busy-waits."""
        while not self._stopping:
            try:
                await self.pump()
                due = await self.outbox.next_due_at()
            except StoreUnavailable as exc:
                log(logger, logging.ERROR, "store_unavailable", kind=exc.kind, error=str(exc))
                due = self.clock() + 1.0
            now = self.clock()
            if due is None:
                timeout: float | None = self.idle_poll_s
            elif due > now:
                timeout = due - now
            else:
                timeout = None  # due but every sender busy: a finishing send wakes us
            if self._unavailable_since:
                timeout = 1.0 if timeout is None else min(timeout, 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    async def stop(self, drain_timeout_s: float = 30.0) -> int:
        """Start nothing new; let texts in flight finish (SIGTERM drains). How many remain."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=drain_timeout_s)
        return len(self._tasks)
