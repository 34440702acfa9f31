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
import contextlib
import itertools
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textback import webhooks
from textback.config import Config
from textback.logfmt import log
from textback.numbers import normalise_caller, number_plan
from textback.outbound import call_record
from textback.outbound.alerts import alert_bursts
from textback.outbound.followups import cancel_follow_ups_in, recipient_zone
from textback.outbound.outbox import EnqueueResult, Outbox, cancel_for_number_in, log_refused
from textback.outbound.policy import Decision, decide, number_prefix, reached_number
from textback.outbound.policy_facts import policy_snapshot_in
from textback.outbound.templates import REASON_WORDS, choose, render, segment_plan
from textback.pbx.call_start import CallStart
from textback.pbx.outcome import CallOutcome
from textback.store import Store, StoreUnavailable

if TYPE_CHECKING:
    from textback.outbound.followups import FollowUps

logger = logging.getLogger("textback.outbound.pipeline")

TEXT_KIND = "textback"
# verdicts decided in one transaction at most (a burst of calls ending together)
MAX_BATCH = 200


@dataclass(slots=True)
class _Step:
    """One verdict's way through the batch transaction, for what follows its commit."""

    outcome: CallOutcome
    new: bool
    cancelled: tuple[str, int] | None = None  # (reached number, texts cancelled)
    followups_cancelled: tuple[str, str, int] | None = None  # (number, why, n)
    decision: Decision | None = None  # the policy's, for a new missed inbound call
    skip: str | None = None  # the policy's skip reason
    queued: EnqueueResult | None = None
    body: str | None = None
    template: str | None = None
    parts: int | None = None
    followup_times: list[float] | None = None  # touches 2.. written with the first text


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

    def warm_up(self) -> None:
        """At start: load the number plan of each DID's country (phonenumbers reads a
        region's metadata on first use: about 5 ms for the NANP's), so the first missed
        caller after a start does not wait for it."""
        for did in self.config.dids:
            number_plan(did.number)
            recipient_zone(did.number, did.hours.timezone)

    def expect(self, start: CallStart) -> None:
        """A call is ringing: work out now what deciding it will need to know of its
        number and only of its number (the number plan's verdict and region, the caller's
        time zone), so the hang-up → text path finds them cached. For a +1 number that is
        about 0.3 ms of phonenumbers, the largest part of the decide transaction; a caller
        rings for seconds, and is texted milliseconds after the hang-up."""
        number = normalise_caller(start.caller_raw, self.config.trunks.default_region)
        if number is None or not number.startswith("+"):
            return
        number_plan(number)
        did = self.config.did(start.did_raw)
        recipient_zone(number, did.hours.timezone if did is not None else "UTC")

    def submit(self, outcome: CallOutcome) -> None:
        """Accept a verdict from a listener (never blocks, never drops)."""
        self._pending.append(outcome)
        self._kick.set()

    async def run(self) -> None:
        """Drain verdicts in order forever, those waiting together in one transaction (a
        burst of calls ending at once costs one commit, not one lock wait per call); on
        StoreUnavailable wait and retry the same ones (every step is idempotent)."""
        delay = self.retry_base_s
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._pending:
                batch = list(itertools.islice(self._pending, MAX_BATCH))
                try:
                    await self.handle_batch(batch)
                except StoreUnavailable as exc:
                    log(logger, logging.ERROR, "store_unavailable", call=batch[0].call,
                        kind=exc.kind, error=str(exc), backlog=len(self._pending),
                        retry_in_s=round(delay, 2))
                    await asyncio.sleep(delay)
                    delay = min(self.retry_max_s, delay * 2)
                    continue
                delay = self.retry_base_s
                for _ in batch:
                    self._pending.popleft()

    async def drain(self) -> None:
        """Handle everything submitted so far (used at shutdown and by tests)."""
        while self._pending:
            batch = list(itertools.islice(self._pending, MAX_BATCH))
            await self.handle_batch(batch)
            for _ in batch:
                self._pending.popleft()

    async def handle(self, outcome: CallOutcome) -> Handled:
        """One verdict: record, decide and queue (see :meth:`handle_batch`)."""
        return (await self.handle_batch([outcome]))[0]

    async def handle_batch(self, outcomes: list[CallOutcome]) -> list[Handled]:
        """Record every verdict, cancel what a reached caller no longer needs, run the
        policy and queue the texts: all of it in ONE store transaction, in order (a call
        sees the calls before it in the batch, as if handled one by one), follow-up rows
        with their first text, run as one function in one trip to the database thread
        (``Store.run``). Then, after the commit: the dispatcher is woken first (the text's
        way to the modem; no other write of ours is queued in front of its claim), and only
        then is the follow-up loop poked and staff told of a burst. A failure rolls the
        whole batch back: nothing runs ahead of its record."""
        now = self.clock()
        outcomes = [self._assume_did(o) for o in outcomes]
        try:
            steps = await self.store.run("record_outcome", lambda db: [
                self._decide_in(db, outcome, now) for outcome in outcomes])
        except StoreUnavailable:
            raise  # nothing written; the caller holds the verdicts and retries
        except Exception:
            # not the store's failure (a bug while deciding): a missed call seen is still
            # recorded, undecided, so a restart decides it (``undecided_calls``)
            for outcome in outcomes:
                with contextlib.suppress(Exception):
                    await call_record.record_outcome(self.store, outcome, now)
            raise
        if any(step.queued is not None and step.queued.queued for step in steps):
            self.wake()
        return [self._done(await self._after(step, now)) for step in steps]

    def _decide_in(self, db: sqlite3.Connection, outcome: CallOutcome, now: float) -> _Step:
        """One verdict's part of the batch transaction (on the database thread: plain data
        and the connection only)."""
        record = call_record.record_outcome_in(db, outcome, now)
        step = _Step(outcome, record.new)
        if not record.new:
            return step
        reached = reached_number(outcome)
        if reached is not None:
            step.cancelled = (reached, cancel_for_number_in(db, reached, "reached", now))
        stop = reached or (outcome.callee if outcome.direction == "outbound" else None)
        if stop and self.followups is not None:  # reached, or a staff callback attempt
            why = "reached" if reached else "callback"
            step.followups_cancelled = (stop, why, cancel_follow_ups_in(db, stop, why))
        if outcome.direction != "inbound" or outcome.verdict != "missed":
            return step
        self._decide_missed_in(db, step, now)
        return step

    def _decide_missed_in(self, db: sqlite3.Connection, step: _Step, now: float) -> None:
        outcome = step.outcome
        policy = self.config.policy
        number = outcome.caller or ""
        snapshot = policy_snapshot_in(
            db, number, outcome.did, now, number_prefix(number, policy.prefix_digits), policy)
        decision = decide(outcome, self.config, snapshot, now)
        step.decision = decision
        did = decision.did
        if not decision.texts or did is None:
            step.skip = decision.reason or "skipped"
            call_record.record_skip_in(db, outcome.call, step.skip, decision.detail, now,
                                       policy)
            return
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
        step.body, step.template, step.parts = body, choice.kind, (
            len(plan.parts) if plan else None)
        step.queued = self.outbox.enqueue_in(
            db, call_id=outcome.call, kind=TEXT_KIND, number=number, did=did.number,
            body=body, senders=did.senders, not_before=decision.not_before or now, now=now,
            template=choice.kind, encoding=plan.encoding if plan else None,
            parts=step.parts)
        if self.followups is not None and step.queued.queued:
            # touches 2.. with the first text, in the same commit: no second transaction
            # for the dispatcher's claim to wait behind
            step.followup_times = self.followups.schedule_in(
                db, outcome.call, number, did, outcome.ended_at or now,
                decision.not_before or now, step.queued.id)

    async def _after(self, step: _Step, now: float) -> Handled:
        """What follows a committed step: its log lines, follow-ups, the burst alert."""
        outcome = step.outcome
        log(logger, logging.INFO, "call_decided", call=outcome.call,
            direction=outcome.direction, verdict=outcome.verdict, reason=outcome.reason,
            caller=outcome.caller, withheld=outcome.withheld, did=outcome.did,
            ring_s=round(outcome.ring_s, 1), voicemail_left=outcome.voicemail_left,
            new=step.new)
        if not step.new:
            return Handled(outcome.call, False, "duplicate")
        await webhooks.call_missed(self.hooks, outcome.call, at=now)
        if step.cancelled is not None and step.cancelled[1]:
            log(logger, logging.INFO, "texts_cancelled", number=step.cancelled[0],
                n=step.cancelled[1], why="caller reached", call=outcome.call)
        if step.followups_cancelled is not None and step.followups_cancelled[2]:
            number, why, n = step.followups_cancelled
            log(logger, logging.INFO, "follow_ups_cancelled", number=number, n=n, why=why)
        decision = step.decision
        if decision is None:
            return Handled(outcome.call, True, "ignored", outcome.reason)
        if step.skip is not None:
            if step.skip == "burst":  # the prefix is now paused: tell staff once
                await alert_bursts(self.store, self.outbox, self.config, now)
                self.wake()
            log(logger, logging.INFO, "text_skipped", call=outcome.call, reason=step.skip,
                detail=decision.detail)
            return Handled(outcome.call, True, "skipped", step.skip)
        queued, did = step.queued, decision.did
        assert queued is not None and did is not None
        number = outcome.caller or ""
        log_refused(queued, kind=TEXT_KIND, number=number, did=did.number,
                    call_id=outcome.call)
        if queued.refused is not None:  # the outbox's gate refused it (call skip recorded)
            log(logger, logging.INFO, "text_skipped", call=outcome.call,
                reason=queued.refused, detail=queued.detail)
            return Handled(outcome.call, True, "skipped", queued.refused)
        log(logger, logging.INFO, "text_queued", call=outcome.call, number=number,
            did=did.number, outbox=queued.id, template=step.template, parts=step.parts,
            created=queued.created, not_before=round(decision.not_before or now, 3))
        if self.followups is not None and step.followup_times is not None:
            self.followups.scheduled(outcome.call, number, did, step.followup_times)
        return Handled(outcome.call, True, "queued", None, queued.id, step.body)

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
        now = self.clock()
        step = _Step(outcome, True)
        await self.store.run("redecide", lambda db: self._decide_missed_in(db, step, now))
        if step.queued is not None and step.queued.queued:
            self.wake()
        return self._done(await self._after(step, now))

    def _done(self, handled: Handled) -> Handled:
        self.handled.append(handled)
        if len(self.handled) > 1000:
            del self.handled[:500]
        return handled
