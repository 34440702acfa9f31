"""Follow-ups: schedule across time zones and DST with an injected clock, restart in the
middle of a sequence, stop conditions, and an opt-out racing a follow-up being released."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.daemon_fakes import CALLER, DID, Clock, lab_gate, make_config, opened, outcome
from textback.inbound.handler import InboundHandler
from textback.outbound.followup_rules import RuleError, parse_quiet, parse_rule, parse_rules
from textback.outbound.followups import PARKED_AT, FollowUps, after_quiet, plan, recipient_zone
from textback.outbound.hours import Hours, parse_day
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.store import Store

NY = ZoneInfo("America/New_York")
LA_NUMBER = "+13105550123"  # area code 310: Los Angeles
LONDON_NUMBER = "+442079460123"  # 020: London
QUIET = (21 * 60, 8 * 60)
WEEKDAYS = Hours("America/New_York", tuple(parse_day(v) for v in (
    ["09:00-17:00"] * 5 + ["", ""])))


def at(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = NY) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


def local(t: float, tz: str | ZoneInfo = NY) -> str:
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return dt.datetime.fromtimestamp(t, tz=zone).strftime("%a %Y-%m-%d %H:%M %Z")


# ------------------------------------------------------------------ parsing


def test_rules_and_quiet_hours_parse() -> None:
    assert parse_rule("+2h").offset_s == 7200 and parse_rule("+90m").offset_s == 5400
    assert parse_rule("+1d").offset_s == 86400
    assert parse_rule("next-business-day 10:00").minute == 600
    assert parse_quiet("21:00-08:00") == QUIET and parse_quiet("") is None
    for bad in ("2h", "+0h", "tomorrow", "next-business-day 24:00"):
        with pytest.raises(RuleError):
            parse_rule(bad)
    with pytest.raises(RuleError, match="at most 2"):
        parse_rules(["+1h", "+2h", "+3h"])


def test_recipient_zone_from_number_else_did() -> None:
    assert recipient_zone(LA_NUMBER, "America/New_York") == "America/Los_Angeles"
    assert recipient_zone(LONDON_NUMBER, "America/New_York") == "Europe/London"
    # the fictional 555 range has no zone ("Etc/Unknown"): the DID's
    assert recipient_zone("+15551230001", "America/Chicago") == "America/Chicago"
    # a UK mobile may be in London or the Crown dependencies: the DID's zone if it is one
    assert recipient_zone("+447911123456", "Europe/London") == "Europe/London"
    assert recipient_zone("not a number", "America/Chicago") == "America/Chicago"


# ------------------------------------------------------------------ pure schedule


def test_default_plan_weekday_afternoon() -> None:
    missed = at(2026, 6, 10, 14, 2)  # a Wednesday
    second, third = plan(missed, missed + 10, CALLER, parse_rules(
        ["+2h", "next-business-day 10:00"]), WEEKDAYS, QUIET)
    assert local(second) == "Wed 2026-06-10 16:02 EDT"
    assert local(third) == "Thu 2026-06-11 10:00 EDT"


def test_quiet_hours_are_the_recipients_and_the_touch_waits() -> None:
    missed = at(2026, 6, 10, 19, 30)  # 19:30 New York = 16:30 Los Angeles
    rules = parse_rules(["+2h"])
    (ny,) = plan(missed, missed, "+12125550123", rules, WEEKDAYS, QUIET)
    assert local(ny) == "Thu 2026-06-11 08:00 EDT"  # 21:30 NY is quiet: waits to 08:00
    (la,) = plan(missed, missed, LA_NUMBER, rules, WEEKDAYS, QUIET)
    assert local(la, "America/Los_Angeles") == "Wed 2026-06-10 18:30 PDT"  # not quiet there
    (london,) = plan(missed, missed, LONDON_NUMBER, rules, WEEKDAYS, QUIET)
    # 21:30 NY = 02:30 London: quiet there, waits until 08:00 London
    assert local(london, "Europe/London") == "Thu 2026-06-11 08:00 BST"
    (none,) = plan(missed, missed, "+12125550123", rules, WEEKDAYS, None)
    assert none == missed + 7200


def test_next_business_day_skips_weekend_and_holiday() -> None:
    friday = at(2026, 7, 2, 15)  # Thursday 2 July; Friday 3 July is the observed holiday
    hours = Hours("America/New_York", WEEKDAYS.week, frozenset({dt.date(2026, 7, 3)}))
    (t,) = plan(friday, friday, CALLER, parse_rules(["next-business-day 10:00"]), hours, QUIET)
    assert local(t) == "Mon 2026-07-06 10:00 EDT"


def test_across_spring_forward_and_fall_back() -> None:
    rules = parse_rules(["+2h", "next-business-day 10:00"])
    # Friday 6 March 2026 15:00 EST; DST starts Sunday 8 March: Monday 10:00 is EDT
    missed = at(2026, 3, 6, 15)
    second, third = plan(missed, missed, "+12125550123", rules, WEEKDAYS, QUIET)
    assert local(second) == "Fri 2026-03-06 17:00 EST"
    assert local(third) == "Mon 2026-03-09 10:00 EDT"
    assert third - missed == (2 * 24 + 18) * 3600  # 67 h of wall clock, one lost to DST
    # Saturday night 20:30 before the spring-forward: +2h lands in quiet hours and waits to
    # 08:00 EDT on Sunday (which is 12:00 UTC, not 13:00)
    sat = at(2026, 3, 7, 20, 30)
    (t,) = plan(sat, sat, "+12125550123", parse_rules(["+2h"]), WEEKDAYS, QUIET)
    assert local(t) == "Sun 2026-03-08 08:00 EDT"
    assert dt.datetime.fromtimestamp(t, tz=dt.UTC).hour == 12
    # fall back (1 Nov 2026): quiet ends at 08:00 EST = 13:00 UTC
    sat = at(2026, 10, 31, 22)
    assert local(after_quiet(sat, "America/New_York", QUIET)) == "Sun 2026-11-01 08:00 EST"
    # quiet end inside a spring-forward gap (02:30 does not exist): 03:30 EDT, never earlier
    gap = after_quiet(at(2026, 3, 8, 1), "America/New_York", (0, 150))
    assert local(gap) == "Sun 2026-03-08 03:30 EDT"


def test_a_touch_never_overtakes_the_one_before() -> None:
    missed = at(2026, 6, 10, 14)
    (t,) = plan(missed, missed + 3 * 3600, CALLER, parse_rules(["+1h"]), WEEKDAYS, None)
    assert t == missed + 3 * 3600 + 60


# ------------------------------------------------------------------ the scheduler


class Rig:
    """The real store, outbox, pipeline, inbound handler and scheduler on one clock."""

    def __init__(self, store: Store, tmp: Path, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self.config = make_config(tmp)
        self.outbox = Outbox(store, config=lab_gate())
        self.followups = FollowUps(store, self.outbox, self.config, clock=clock)
        self.pipeline = CallPipeline(store, self.outbox, self.config, clock=clock,
                                     followups=self.followups)
        self.inbound = InboundHandler(store, self.outbox, self.config, clock=clock,
                                      followups=self.followups)

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.store.fetchall(sql, params)]

    async def followup_texts(self) -> list[dict[str, Any]]:
        return await self.rows("SELECT kind, state, not_before, cancel_reason FROM outbox "
                               "WHERE kind LIKE 'followup-%' ORDER BY id")


START = at(2026, 6, 10, 14, 2)  # Wednesday 14:02 New York (the test DID's zone)


async def test_missed_call_schedules_two_touches_that_go_in_order(tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        rows = await rig.rows("SELECT touch, state, due_at FROM follow_ups ORDER BY touch")
        assert [(r["touch"], r["state"]) for r in rows] == [
            (1, "queued"), (2, "scheduled"), (3, "scheduled")]
        # the DID's hours are 24/7 in the fixture: next business day is Thursday 10:00
        assert local(rows[1]["due_at"]) == "Wed 2026-06-10 16:02 EDT"
        assert local(rows[2]["due_at"]) == "Thu 2026-06-11 10:00 EDT"
        assert await rig.followups.run_due() == []  # nothing due yet
        clock.t = rows[1]["due_at"]
        (released,) = await rig.followups.run_due()
        assert released.action == "queued" and released.touch == 2
        texts = await rig.followup_texts()
        assert [(t["kind"], t["state"], t["not_before"]) for t in texts] == [
            ("followup-2", "queued", clock.t)]
        assert "Acme Plumbing" in (await rig.rows(
            "SELECT body FROM outbox WHERE kind = 'followup-2'"))[0]["body"]
        clock.t = rows[2]["due_at"]
        await rig.followups.run_due()
        assert [t["kind"] for t in await rig.followup_texts()] == ["followup-2", "followup-3"]
        assert await rig.followups.next_due_at() is None


async def test_restart_in_the_middle_of_a_sequence(tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        clock.t = START + 2 * 3600 + 5
        await rig.followups.run_due()  # touch 2 queued, then the process dies
    # down all evening and night: back at 23:30, touch 3 (Thursday 10:00) still waits
    clock.t = at(2026, 6, 10, 23, 30)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        assert await rig.followups.recover(clock.t) == 0  # the rows were already written
        assert await rig.followups.run_due() == []
        assert local(await rig.followups.next_due_at() or 0) == "Thu 2026-06-11 10:00 EDT"
        # the same step repeated after a crash does not text twice
        await rig.pipeline.redecide(outcome("c1", ended_at=START))
        clock.t = at(2026, 6, 11, 10, 0)
        (released,) = await rig.followups.run_due()
        assert released.action == "queued" and released.touch == 3
        kinds = [t["kind"] for t in await rig.followup_texts()]
        assert kinds == ["followup-2", "followup-3"]


async def test_a_touch_found_due_in_quiet_hours_after_downtime_waits(tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        clock.t = at(2026, 6, 10, 22, 15)  # the daemon was down at 16:02; now it is 22:15
        (waiting, _) = [*await rig.followups.run_due(), None]
        assert waiting is not None and waiting.action == "waiting"
        assert await rig.followup_texts() == []  # not dropped, not sent at night
        due = await rig.followups.next_due_at()
        assert due is not None and local(due).endswith("08:00 EDT")
        clock.t = due
        assert [r.action for r in await rig.followups.run_due()] == ["queued"]


async def test_recover_schedules_a_first_text_queued_just_before_a_crash(
        tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        rig.pipeline.followups = None  # crash between the enqueue and the schedule
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        assert await rig.rows("SELECT * FROM follow_ups") == []
        assert await rig.followups.recover(START + 1) == 1
        assert len(await rig.rows("SELECT * FROM follow_ups")) == 3


@pytest.mark.parametrize(("event", "reason"), [
    ("reply", "replied"), ("stop", "opted-out"), ("answered", "reached"),
    ("callback", "callback"),
])
async def test_each_stop_condition_cancels_the_rest(tmp_path: Path, event: str,
                                                    reason: str) -> None:
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        clock.t = START + 600
        if event in ("reply", "stop"):
            text = "thanks, Tuesday works" if event == "reply" else "STOP"
            await rig.inbound.receive(number=CALLER, text=text, did=DID, via="modem:a",
                                      at=clock.t)
        elif event == "answered":
            await rig.pipeline.handle(outcome("c2", verdict="answered", reason="answered",
                                              ended_at=clock.t))
        else:  # staff ring the customer back from a desk phone (an outbound call)
            await rig.pipeline.handle(outcome("c3", direction="outbound", caller="201",
                                              callee=CALLER, did=None, verdict="ignored",
                                              reason="outbound", ended_at=clock.t))
        states = await rig.rows("SELECT state, cancel_reason FROM follow_ups WHERE touch > 1")
        assert [(s["state"], s["cancel_reason"]) for s in states] == [("cancelled", reason)] * 2
        clock.t = START + 3 * 86400
        assert await rig.followups.run_due() == []
        assert await rig.followup_texts() == []


async def test_a_stop_condition_missed_by_the_event_is_caught_at_release(
        tmp_path: Path) -> None:
    """A reply stored by another process (or before the cancel ran) still stops it."""
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        async with store.transaction("test") as db:
            await db.execute("INSERT INTO messages (direction, number, did, body, status, "
                             "created_at) VALUES ('in', ?, ?, 'ok', 'received', ?)",
                             (CALLER, DID, START + 60))
        clock.t = START + 2 * 3600
        (r,) = await rig.followups.run_due()
        assert (r.action, r.reason) == ("cancelled", "replied")
        assert await rig.followup_texts() == []


async def test_opt_out_racing_a_follow_up_being_released(tmp_path: Path) -> None:
    """The STOP lands between the follow-up's enqueue and its release (the store lock is
    the only thing ordering them): the follow-up must never become due."""
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        clock.t = START + 2 * 3600
        real_enqueue = rig.outbox.enqueue
        stop_done = asyncio.Event()

        async def enqueue_then_stop(**kw: Any) -> Any:
            result = await real_enqueue(**kw)
            if kw["kind"].startswith("followup-"):
                await rig.inbound.receive(number=CALLER, text="Stop texting me", did=DID,
                                          via="modem:a", at=clock.t)
                stop_done.set()
            return result

        rig.outbox.enqueue = enqueue_then_stop  # type: ignore[method-assign]
        (r,) = await rig.followups.run_due()
        assert stop_done.is_set()
        assert (r.action, r.reason) == ("cancelled", "opted-out")
        (text,) = await rig.followup_texts()
        assert text["state"] == "cancelled" and text["not_before"] == PARKED_AT
        assert await rig.outbox.claim_next(clock.t + 86400) is not None  # the confirmation
        assert await rig.outbox.claim_next(clock.t + 86400) is None  # and nothing else


async def test_opt_out_after_release_cancels_the_queued_follow_up(tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        clock.t = START + 2 * 3600
        await rig.followups.run_due()

        async def stop() -> None:
            await rig.inbound.receive(number=CALLER, text="STOP", did=DID, via="modem:a",
                                      at=clock.t)

        await asyncio.gather(stop(), rig.followups.run_due())
        states = {t["kind"]: t["state"] for t in await rig.followup_texts()}
        assert states == {"followup-2": "cancelled"}
        assert (await rig.rows("SELECT state FROM follow_ups WHERE touch = 3"))[0]["state"] \
            == "cancelled"


async def test_run_loop_sleeps_until_due_and_stops_cleanly(tmp_path: Path) -> None:
    clock = Clock(START)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        woke: list[int] = []
        rig.followups.wake = lambda: woke.append(1)
        await rig.pipeline.handle(outcome("c1", ended_at=START))
        task = asyncio.create_task(rig.followups.run())
        await asyncio.sleep(0.05)
        assert woke == []
        clock.t = START + 2 * 3600
        rig.followups.poke()
        for _ in range(100):
            if woke:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert woke and [t["kind"] for t in await rig.followup_texts()] == ["followup-2"]
