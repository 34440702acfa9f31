"""From a call's verdict to a queued text: record → cancel the reached → policy → outbox.

Order is the guarantee. A verdict is committed to the store before anything else happens
to it; only a newly recorded call can queue a text (a duplicate verdict for the same call
changes nothing); the outbox's unique (call, kind) key makes a second text impossible even
if two paths (AMI and FastAGI) report the same call. When the store is unavailable (locked,
disk full) verdicts wait here in memory, in arrival order, and are retried with backoff:
nothing decided is dropped and nothing runs ahead of its record.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textback import webhooks
from textback.config import Config
from textback.logfmt import log
from textback.outbound import call_record
from textback.outbound.alerts import alert_bursts
from textback.outbound.outbox import Outbox
from textback.outbound.policy import decide, number_prefix, reached_number
from textback.outbound.policy_facts import policy_snapshot
from textback.outbound.templates import REASON_WORDS, choose, render, segment_plan
from textback.pbx.outcome import CallOutcome
from textback.store import Store, StoreUnavailable

if TYPE_CHECKING:
    from textback.outbound.followups import FollowUps

logger = logging.getLogger("textback.outbound.pipeline")

TEXT_KIND = "textback"


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one verdict (returned for tests and the demo's summary)."""

    call: str
    recorded: bool  # False: a duplicate verdict, ignored
    action: str  # "queued", "skipped", "ignored", "duplicate"
    reason: str | None = None
    outbox_id: int | None = None
    body: str | None = None


class CallPipeline:
    """Turns verdicts into outbox rows; the dispatcher is woken through ``wake``."""

    def __init__(self, store: Store, outbox: Outbox, config: Config, *,
                 clock: Callable[[], float], wake: Callable[[], None] = lambda: None,
                 retry_base_s: float = 0.5, retry_max_s: float = 30.0,
                 followups: FollowUps | None = None) -> None:
        self.store = store
        self.followups = followups  # schedules touches 2.. when the first text is queued
        self.outbox = outbox
        self.config = config
        self.clock = clock
        self.wake = wake
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._pending: collections.deque[CallOutcome] = collections.deque()
        self._kick = asyncio.Event()
        self.handled: list[Handled] = []
        self.hooks: webhooks.Webhooks | None = None  # call.missed (the daemon sets it)

    def reconfigure(self, config: Config) -> None:
        """A reloaded config (SIGHUP): the next verdict is decided and worded with it."""
        self.config = config

    @property
    def backlog(self) -> int:
        """Verdicts waiting for the store (non-zero only while it is unavailable)."""
        return len(self._pending)

    def submit(self, outcome: CallOutcome) -> None:
        """Accept a verdict from a listener (never blocks, never drops)."""
        self._pending.append(outcome)
        self._kick.set()

    async def run(self) -> None:
        """Drain verdicts in order forever; on StoreUnavailable wait and retry the same one."""
        delay = self.retry_base_s
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._pending:
                outcome = self._pending[0]
                try:
                    await self.handle(outcome)
                except StoreUnavailable as exc:
                    log(logger, logging.ERROR, "store_unavailable", call=outcome.call,
                        kind=exc.kind, error=str(exc), backlog=len(self._pending),
                        retry_in_s=round(delay, 2))
                    await asyncio.sleep(delay)
                    delay = min(self.retry_max_s, delay * 2)
                    continue
                delay = self.retry_base_s
                self._pending.popleft()

    async def drain(self) -> None:
        """Handle everything submitted so far (used at shutdown and by tests)."""
        while self._pending:
            await self.handle(self._pending[0])
            self._pending.popleft()

    async def handle(self, outcome: CallOutcome) -> Handled:
        now = self.clock()
        outcome = self._assume_did(outcome)
        record = await call_record.record_outcome(self.store, outcome, now)
        log(logger, logging.INFO, "call_decided", call=outcome.call,
            direction=outcome.direction, verdict=outcome.verdict, reason=outcome.reason,
            caller=outcome.caller, withheld=outcome.withheld, did=outcome.did,
            ring_s=round(outcome.ring_s, 1), voicemail_left=outcome.voicemail_left,
            new=record.new)
        if not record.new:
            return self._done(Handled(outcome.call, False, "duplicate"))
        await webhooks.call_missed(self.hooks, outcome.call, at=now)
        reached = reached_number(outcome)
        if reached is not None:
            cancelled = await self.outbox.cancel_for_number(reached, "reached", now)
            if cancelled:
                log(logger, logging.INFO, "texts_cancelled", number=reached, n=cancelled,
                    why="caller reached", call=outcome.call)
        stop = reached or (outcome.callee if outcome.direction == "outbound" else None)
        if stop and self.followups is not None:  # reached, or a staff callback attempt
            await self.followups.cancel(stop, "reached" if reached else "callback", now)
        if outcome.direction != "inbound" or outcome.verdict != "missed":
            return self._done(Handled(outcome.call, True, "ignored", outcome.reason))
        return self._done(await self._decide_missed(outcome, now))

    def _assume_did(self, outcome: CallOutcome) -> CallOutcome:
        """An inbound call whose DID the listener never saw (first seen mid-call after a
        restart: the PBX no longer shows it) belongs to the only ``[[did]]`` when exactly
        one is configured; with several, guessing could text a caller in the wrong
        business's name, so it stays unknown (skipped ``unknown-did``)."""
        if outcome.direction != "inbound" or outcome.did is not None \
                or not outcome.extra.get("did_unseen") or len(self.config.dids) != 1:
            return outcome
        did = self.config.dids[0].number
        log(logger, logging.INFO, "did_assumed", call=outcome.call, did=did,
            why="DID never seen (call first seen mid-call); the only [[did]] configured")
        return replace(outcome, did=did, extra={**outcome.extra, "did_assumed": True})

    async def redecide(self, outcome: CallOutcome) -> Handled:
        """A missed call recorded before a crash but never decided: decide it now (its
        record exists, so ``handle`` would see a duplicate and do nothing)."""
        await webhooks.call_missed(self.hooks, outcome.call, at=self.clock())
        return self._done(await self._decide_missed(outcome, self.clock()))

    async def _decide_missed(self, outcome: CallOutcome, now: float) -> Handled:
        policy = self.config.policy
        number = outcome.caller or ""
        snapshot = await policy_snapshot(
            self.store, number, outcome.did, now, number_prefix(number, policy.prefix_digits),
            policy)
        decision = decide(outcome, self.config, snapshot, now)
        did = decision.did
        if not decision.texts or did is None:
            reason = decision.reason or "skipped"
            await call_record.record_skip(self.store, outcome.call, reason, decision.detail, now,
                                          policy)
            if reason == "burst":  # the prefix is now paused: tell staff once
                await alert_bursts(self.store, self.outbox, self.config, now)
                self.wake()
            log(logger, logging.INFO, "text_skipped", call=outcome.call, reason=reason,
                detail=decision.detail)
            return Handled(outcome.call, True, "skipped", reason)
        choice = choose(did.templates, did.hours.period(outcome.ended_at or now),
                        outcome.voicemail_left)
        body = render(choice.text, {
            "business": did.business,
            "callback": did.callback or did.number,
            "booking_url": did.booking_url,
            "reason": REASON_WORDS.get(outcome.reason, ""),
            "caller": number,
        })
        plan = segment_plan(body)
        queued = await self.outbox.enqueue(
            call_id=outcome.call, kind=TEXT_KIND, number=number, did=did.number, body=body,
            senders=did.senders, not_before=decision.not_before or now, now=now,
            template=choice.kind, encoding=plan.encoding if plan else None,
            parts=len(plan.parts) if plan else None)
        if queued.refused is not None:  # the outbox's gate refused it (call skip recorded)
            log(logger, logging.INFO, "text_skipped", call=outcome.call,
                reason=queued.refused, detail=queued.detail)
            return Handled(outcome.call, True, "skipped", queued.refused)
        log(logger, logging.INFO, "text_queued", call=outcome.call, number=number,
            did=did.number, outbox=queued.id, template=choice.kind,
            parts=len(plan.parts) if plan else None, created=queued.created,
            not_before=round(decision.not_before or now, 3))
        if self.followups is not None and queued.queued:
            await self.followups.schedule(outcome.call, number, did,
                                          outcome.ended_at or now, decision.not_before or now,
                                          queued.id, now)
        self.wake()
        return Handled(outcome.call, True, "queued", None, queued.id, body)

    def _done(self, handled: Handled) -> Handled:
        self.handled.append(handled)
        if len(self.handled) > 1000:
            del self.handled[:500]
        return handled
