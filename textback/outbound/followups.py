"""Follow-up texts after a missed call: when each touch is due, and the scheduler that sends them.

A missed call gets up to three touches (default: the text-back itself, then +2 h, then the
next business day at 10:00, per DID). Each later touch is a row in ``follow_ups`` written
when the first text is queued, so the plan survives a restart; the scheduler wakes when the
earliest row is due and queues it in the outbox as kind ``followup-<touch>``, whose unique
(call, kind) key makes each touch at-most-once even if a crash repeats the step.

Why the times are computed the way they are:

* An offset ("+2h") counts from the missed call; "next-business-day 10:00" is a wall-clock
  time in the DID's own time zone, on the first day after the call that is open at all and
  not a holiday.
* Quiet hours (default 21:00-08:00) are the *recipient's* local time: the number's region
  from phonenumbers' time-zone data (one zone per US area code), else the DID's zone. A
  touch that falls in them waits until they end; it is not dropped. Wall-clock arithmetic
  goes through ``zoneinfo``, so a DST change moves the UTC instant, never the local hour.
* Every touch is stopped by any reply, an opt-out, an answered call with the number, or a
  staff callback. Those events cancel the rows at once (``cancel``), and the same conditions
  are checked again, in one transaction, when a touch is released to the sender: an opt-out
  that races a follow-up either cancels the queued row or prevents it, never both missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

from textback.logfmt import log
from textback.outbound.followup_rules import MAX_TOUCHES, FollowUpRule, Quiet
from textback.outbound.hours import Hours
from textback.outbound.outbox import cancel_parked, release_parked

if TYPE_CHECKING:
    from textback.config import Config, DidConfig
    from textback.outbound.outbox import Outbox
    from textback.store import Store

logger = logging.getLogger("textback.outbound.followups")

KIND_PREFIX = "followup-"
PARKED_AT = 1e15  # an outbox row parked here is never due (see FollowUps._release)


# ---------------------------------------------------------------------------- pure timing


@lru_cache(maxsize=4096)
def _zones_for(number: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in pn_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown")
    return zones


def recipient_zone(number: str, fallback: str) -> str:
    """The recipient's IANA zone: the one phonenumbers gives for the number; when it gives
    several (a whole country, e.g. a Russian or Brazilian mobile), the fallback if it is one
    of them, else the first; when none, the fallback (the DID's zone)."""
    zones = [z for z in _zones_for(number) if _known_zone(z)]
    if not zones:
        return fallback
    if len(zones) == 1 or fallback not in zones:
        return zones[0]
    return fallback


@lru_cache(maxsize=256)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _wall_to_epoch(day: dt.date, minute: int, zone: ZoneInfo) -> float:
    """The instant of local wall time ``day`` + ``minute``; inside a spring-forward gap the
    later reading (never earlier than asked), in a fall-back overlap the first."""
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
    aware = naive.replace(tzinfo=zone)
    epoch = aware.timestamp()
    if dt.datetime.fromtimestamp(epoch, tz=zone).replace(tzinfo=None) != naive:
        return max(epoch, aware.replace(fold=1).timestamp())
    return epoch


def in_quiet(at: float, zone: str, quiet: Quiet | None) -> bool:
    if quiet is None:
        return False
    local = dt.datetime.fromtimestamp(at, tz=ZoneInfo(zone))
    minute = local.hour * 60 + local.minute
    start, end = quiet
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def after_quiet(at: float, zone: str, quiet: Quiet | None) -> float:
    """``at`` itself when it is outside quiet hours in ``zone``, else the end of the quiet
    period it falls in (local wall clock, DST-safe)."""
    if not in_quiet(at, zone, quiet):
        return at
    assert quiet is not None
    tz = ZoneInfo(zone)
    local = dt.datetime.fromtimestamp(at, tz=tz)
    end = quiet[1]
    minute = local.hour * 60 + local.minute
    day = local.date()
    if minute >= end:  # evening part of a wrapping range: ends tomorrow morning
        day += dt.timedelta(days=1)
    return max(at, _wall_to_epoch(day, end, tz))


def next_business_day(after: float, hours: Hours, minute: int,
                      horizon_days: int = 60) -> float | None:
    """Local ``minute`` on the first day after the local date of ``after`` that has opening
    hours and is not a holiday, in the hours' zone; None if none within the horizon."""
    tz = ZoneInfo(hours.timezone)
    day = dt.datetime.fromtimestamp(after, tz=tz).date()
    for _ in range(horizon_days):
        day += dt.timedelta(days=1)
        if hours.week[day.weekday()] and not hours.is_holiday(day):
            return _wall_to_epoch(day, minute, tz)
    return None


def plan(missed_at: float, first_at: float, number: str, rules: Sequence[FollowUpRule],
         hours: Hours, quiet: Quiet | None) -> list[float]:
    """Due times of touches 2, 3 ... for a call missed at ``missed_at`` whose first text is
    due at ``first_at``. Each touch is moved out of the recipient's quiet hours and kept
    after the touch before it (a touch never overtakes the previous one)."""
    zone = recipient_zone(number, hours.timezone)
    times: list[float] = []
    previous = first_at
    for rule in rules[:MAX_TOUCHES - 1]:
        if rule.kind == "offset":
            due: float | None = missed_at + rule.offset_s
        else:
            due = next_business_day(missed_at, hours, rule.minute)
        if due is None:
            continue
        due = after_quiet(max(due, previous + 60.0), zone, quiet)
        times.append(due)
        previous = due
    return times


# ---------------------------------------------------------------------------- the scheduler


@dataclass(frozen=True, slots=True)
class Released:
    """What ``run_due`` did with one due touch."""

    follow_up: int
    call_id: str
    touch: int
    action: str  # "queued", "cancelled", "waiting"
    reason: str | None = None
    outbox_id: int | None = None


class FollowUps:
    """Schedules follow-up rows and releases them to the outbox when due."""

    def __init__(self, store: Store, outbox: Outbox, config: Config, *,
                 clock: Callable[[], float], wake: Callable[[], None] = lambda: None,
                 max_sleep_s: float = 300.0) -> None:
        self.store = store
        self.outbox = outbox
        self.config = config
        self.clock = clock
        self.wake = wake
        self.max_sleep_s = max_sleep_s
        self._kick = asyncio.Event()

    def reconfigure(self, config: Config) -> None:
        """A reloaded config (SIGHUP): rules, hours and wording for the next follow-up
        planned or released; rows already planned keep their due times."""
        self.config = config
        self.poke()

    def poke(self) -> None:
        """New rows or a changed clock: look again now."""
        self._kick.set()

    async def schedule(self, call_id: str, number: str, did: DidConfig, missed_at: float,
                       first_at: float, first_outbox_id: int | None, now: float) -> list[float]:
        """Write the rows for one missed call (idempotent per (call, touch)); their due times."""
        times = await self.store.run("schedule_follow_ups", lambda db: self.schedule_in(
            db, call_id, number, did, missed_at, first_at, first_outbox_id))
        self.scheduled(call_id, number, did, times)
        return times

    def schedule_in(self, db: sqlite3.Connection, call_id: str, number: str, did: DidConfig,
                    missed_at: float, first_at: float,
                    first_outbox_id: int | None) -> list[float]:
        """:meth:`schedule`'s rows, inside the caller's transaction ``db`` (the pipeline
        writes them with the first text, in one commit, so the dispatcher's claim never
        waits behind a second transaction); call :meth:`scheduled` after the commit."""
        times = plan(missed_at, first_at, number, did.follow_ups, did.hours, did.quiet_hours)
        db.executemany(
            "INSERT INTO follow_ups (call_id, touch, number, did, due_at, state, outbox_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, touch) DO NOTHING",
            [(call_id, 1, number, did.number, first_at, "queued", first_outbox_id)]
            + [(call_id, touch, number, did.number, due, "scheduled", None)
               for touch, due in enumerate(times, start=2)])
        return times

    def scheduled(self, call_id: str, number: str, did: DidConfig,
                  times: list[float]) -> None:
        """After the commit of :meth:`schedule_in`: log, and wake the follow-up loop."""
        if times:
            log(logger, logging.INFO, "follow_ups_scheduled", call=call_id, number=number,
                did=did.number, due=",".join(f"{t:.0f}" for t in times))
        self.poke()

    async def cancel(self, number: str, reason: str, at: float, did: str | None = None) -> int:
        """Stop every scheduled touch to ``number`` (on ``did`` only, when given)."""
        n = await cancel_follow_ups(self.store, number, reason, at, did=did)
        if n:
            log(logger, logging.INFO, "follow_ups_cancelled", number=number, n=n, why=reason)
        return n

    async def resume(self, number: str, did: str, reason: str, now: float) -> int:
        """Schedule again the touches to ``number`` on ``did`` that were cancelled for
        ``reason`` (staff handing a conversation back: textback.inbound.desk); one already
        due is released at once, through the usual stop checks. How many."""
        n = await self.store.run("resume_follow_ups", lambda db: db.execute(
            "UPDATE follow_ups SET state = 'scheduled', cancel_reason = NULL "
            "WHERE number = ? AND did = ? AND state = 'cancelled' AND cancel_reason = ?",
            (number, did, reason)).rowcount)
        if n:
            log(logger, logging.INFO, "follow_ups_resumed", number=number, did=did, n=n,
                after=reason)
            self.poke()
        return n

    async def recover(self, now: float, window_s: float = 2 * 86400.0) -> int:
        """At start: first texts queued just before a crash whose follow-ups were never
        written get them now (rows already written are kept as they are)."""
        rows = await self.store.fetchall(
            "SELECT o.id, o.call_id, o.number, o.did, o.not_before, c.ended_at, c.decided_at "
            "FROM outbox o JOIN calls c ON c.call_id = o.call_id "
            "WHERE o.kind = 'textback' AND o.created_at > ? AND o.state NOT IN "
            "('cancelled', 'skipped', 'failed') AND NOT EXISTS (SELECT 1 FROM follow_ups f "
            "WHERE f.call_id = o.call_id)", (now - window_s,))
        n = 0
        for r in rows:
            did = self.config.did(r["did"])
            if did is None:
                continue
            missed_at = r["ended_at"] if r["ended_at"] is not None else r["decided_at"]
            await self.schedule(r["call_id"], r["number"], did, missed_at, r["not_before"],
                                r["id"], now)
            n += 1
        return n

    async def next_due_at(self) -> float | None:
        row = await self.store.fetchone(
            "SELECT min(due_at) AS t FROM follow_ups WHERE state = 'scheduled'")
        return row["t"] if row else None

    async def run_due(self, now: float | None = None) -> list[Released]:
        """Release every touch due at ``now``."""
        at = self.clock() if now is None else now
        rows = await self.store.fetchall(
            "SELECT * FROM follow_ups WHERE state = 'scheduled' AND due_at <= ? "
            "ORDER BY due_at, id", (at,))
        out = [await self._release(dict(r), at) for r in rows]
        if any(r.action == "queued" for r in out):
            self.wake()
        return out

    async def run(self) -> None:
        """Forever: sleep until the earliest touch is due (or a poke), release due ones."""
        while True:
            await self.run_due()
            due = await self.next_due_at()
            delay = self.max_sleep_s if due is None else min(self.max_sleep_s,
                                                             max(0.0, due - self.clock()))
            self._kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout=max(delay, 0.01))

    async def _release(self, row: dict[str, object], now: float) -> Released:
        fid, call_id, touch = int(row["id"]), str(row["call_id"]), int(row["touch"])  # type: ignore[call-overload]
        number = str(row["number"])
        did = self.config.did(str(row["did"]) if row["did"] is not None else None)
        if did is None:
            return await self._cancel_row(fid, call_id, touch, "did-not-configured", now)
        zone = recipient_zone(number, did.hours.timezone)
        later = after_quiet(now, zone, did.quiet_hours)
        if later > now:  # quiet hours now (e.g. the daemon was down through the evening)
            await self._set_due(fid, later)
            return Released(fid, call_id, touch, "waiting", "quiet-hours")
        stop = await self._stop_reason(call_id, number, did.number)
        if stop is not None:
            return await self._cancel_row(fid, call_id, touch, stop, now)
        body = self._body(did, number)
        parked = await self.outbox.enqueue(
            call_id=call_id, kind=f"{KIND_PREFIX}{touch}", number=number, did=did.number,
            body=body, senders=did.senders, not_before=PARKED_AT, now=now, template="followup")
        if parked.refused is not None:  # the outbox's gate said no (and recorded why)
            return await self._cancel_row(fid, call_id, touch, parked.refused, now)
        # Release in one transaction with the stop checks: an opt-out or reply committed
        # before this point cancels the parked row; one committed after finds it queued and
        # cancels it through Outbox.cancel_for_number. Either way nothing goes after a STOP.
        def release(db: sqlite3.Connection) -> str | None:
            reason_row = db.execute(_STOP_SQL, _stop_params(call_id, number,
                                                            did.number)).fetchone()
            reason = reason_row[0] if reason_row is not None else None
            state_row = db.execute("SELECT state FROM follow_ups WHERE id = ?",
                                   (fid,)).fetchone()
            if state_row is None or state_row[0] != "scheduled":
                reason = reason or "cancelled"
            if reason is not None:
                cancel_parked(db, parked.id, reason, now)
                db.execute("UPDATE follow_ups SET state = 'cancelled', cancel_reason = ? "
                           "WHERE id = ? AND state = 'scheduled'", (reason, fid))
            else:
                release_parked(db, parked.id, now, PARKED_AT)
                db.execute("UPDATE follow_ups SET state = 'queued', outbox_id = ? "
                           "WHERE id = ?", (parked.id, fid))
            return reason
        reason = await self.store.run("release_follow_up", release)
        if reason is not None:
            log(logger, logging.INFO, "follow_up_cancelled", call=call_id, touch=touch,
                why=reason)
            return Released(fid, call_id, touch, "cancelled", reason, parked.id)
        log(logger, logging.INFO, "follow_up_queued", call=call_id, touch=touch, number=number,
            did=did.number, outbox=parked.id)
        return Released(fid, call_id, touch, "queued", None, parked.id)

    async def _set_due(self, fid: int, due: float) -> None:
        await self.store.run("delay_follow_up", lambda db: db.execute(
            "UPDATE follow_ups SET due_at = ? WHERE id = ? AND state = 'scheduled'",
            (due, fid)))

    async def _cancel_row(self, fid: int, call_id: str, touch: int, reason: str,
                          now: float) -> Released:
        await self.store.run("cancel_follow_up", lambda db: db.execute(
            "UPDATE follow_ups SET state = 'cancelled', cancel_reason = ? "
            "WHERE id = ? AND state = 'scheduled'", (reason, fid)))
        log(logger, logging.INFO, "follow_up_cancelled", call=call_id, touch=touch, why=reason)
        return Released(fid, call_id, touch, "cancelled", reason)

    async def _stop_reason(self, call_id: str, number: str, did: str) -> str | None:
        row = await self.store.fetchone(_STOP_SQL, _stop_params(call_id, number, did))
        return row[0] if row is not None else None

    def _body(self, did: DidConfig, number: str) -> str:
        from textback.outbound.templates import render

        return render(did.follow_up_text, {
            "business": did.business, "callback": did.callback or did.number,
            "booking_url": did.booking_url, "reason": "", "caller": number})


# Why a touch must not go, checked in one query (first match wins): the number opted out,
# it wrote to this DID after the call, someone spoke with it after the call (an answered
# inbound call or a connected outbound one, e.g. a staff callback), a callback was placed,
# or the first text never went out (cancelled, skipped or failed: do not chase it), or staff
# took the conversation over in the web app (textback.inbound.desk).
_STOP_SQL = """
WITH base AS (SELECT coalesce(c.ended_at, c.decided_at) AS t FROM calls c WHERE c.call_id = :call)
SELECT CASE
  WHEN EXISTS (SELECT 1 FROM opt_outs WHERE number = :n AND opted_out = 1) THEN 'opted-out'
  WHEN EXISTS (SELECT 1 FROM messages WHERE number = :n AND direction = 'in'
               AND (did = :did OR did IS NULL) AND created_at >= (SELECT t FROM base))
       THEN 'replied'
  WHEN EXISTS (SELECT 1 FROM calls WHERE decided_at >= (SELECT t FROM base) AND (
               (caller = :n AND direction = 'inbound' AND verdict = 'answered')
               OR (callee = :n AND direction = 'outbound'))) THEN 'reached'
  WHEN EXISTS (SELECT 1 FROM callbacks WHERE number = :n AND state != 'failed'
               AND requested_at >= (SELECT t FROM base)) THEN 'callback'
  WHEN EXISTS (SELECT 1 FROM outbox WHERE call_id = :call AND kind = 'textback'
               AND state IN ('cancelled', 'skipped', 'failed')) THEN 'first-text-not-sent'
  WHEN EXISTS (SELECT 1 FROM conversation_desk WHERE number = :n AND did = :did
               AND taken_over_by IS NOT NULL) THEN 'taken-over'
  ELSE NULL END
"""


def _stop_params(call_id: str, number: str, did: str) -> dict[str, str]:
    return {"call": call_id, "n": number, "did": did}


async def cancel_follow_ups(store: Store, number: str, reason: str, at: float, *,
                            did: str | None = None) -> int:
    """Cancel every follow-up still scheduled for ``number`` (on ``did`` only, when given:
    a reply on one line stops that line's touches); how many. The texts already queued are
    the outbox's (``Outbox.cancel_for_number``). This module is the only writer of
    ``follow_ups``: every other path (a reply, an opt-out, a possible opt-out, the CLI)
    cancels through here."""
    where, params = "number = ? AND state = 'scheduled'", [number]
    if did is not None:
        where += " AND did = ?"
        params.append(did)
    return await store.run("cancel_follow_ups", lambda db: int(db.execute(
        f"UPDATE follow_ups SET state = 'cancelled', cancel_reason = ? WHERE {where}",
        (reason, *params)).rowcount))


def cancel_follow_ups_in(db: sqlite3.Connection, number: str, reason: str) -> int:
    """:func:`cancel_follow_ups` (every DID) inside the caller's transaction ``db``: the
    pipeline stops a reached caller's touches in the transaction that records the call."""
    cur = db.execute(
        "UPDATE follow_ups SET state = 'cancelled', cancel_reason = ? "
        "WHERE number = ? AND state = 'scheduled'", (reason, number))
    return int(cur.rowcount)
