"""Calls in progress kept across a restart: the store's open_calls (migration 3 and its
trigger), ``OpenCallKeeper`` between the tracker's callback and the store, and the facts a
real capture's tracker reports going through the store and back into a new tracker."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.conftest import ASTERISK_TRACES
from textback.migrations import LATEST, MIGRATIONS
from textback.outbound import call_record, open_calls
from textback.outbound.open_calls import OpenCallKeeper
from textback.pbx.asterisk.parser import AmiParser
from textback.pbx.asterisk.tracker import CallTracker
from textback.pbx.call_start import CallStart
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig
from textback.store import Store


def real_starts(upto: str) -> list[CallStart]:
    """The CallStart reports of the real direct-noanswer capture up to (excluding) the
    first ``upto`` event, in the order the tracker made them."""
    msgs = [m for m in AmiParser().feed((ASTERISK_TRACES / "direct-noanswer.ami")
                                        .read_bytes()) if m.kind == "event"]
    t = CallTracker(TrackerConfig(settle_s=1.0))
    out: list[CallStart] = []
    t.on_call_started = out.append
    for m in msgs[:next(i for i, m in enumerate(msgs) if m.name == upto)]:
        t.handle(m, now=100.0)
        t.tick(100.0)
    return out


def verdict(start: CallStart) -> CallOutcome:
    return CallOutcome(call=start.call, direction="inbound", caller="+15551230001",
                       withheld=False, did="+15559870000", verdict="missed",
                       reason="noanswer", started_at=start.started_at, ended_at=130.0)


async def test_kept_until_the_verdict_is_recorded(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    try:
        starts = real_starts("Hangup")
        assert len(starts) >= 2  # the start, then the Dial's evidence
        for s in starts:
            assert await open_calls.keep_open_call(store, s, 101.0)
        (back,) = await open_calls.load_open_calls(store, "asterisk")
        assert back == starts[-1]  # the latest facts win
        assert await open_calls.load_open_calls(store, "freeswitch") == []
        await call_record.record_outcome(store, verdict(back), 131.0)
        assert await open_calls.load_open_calls(store) == []  # removed with the verdict (trigger)
        # an update that loses the race with the verdict brings nothing back
        assert not await open_calls.keep_open_call(store, starts[-1], 132.0)
        assert await open_calls.load_open_calls(store) == []
    finally:
        await store.close()


async def test_rows_whose_verdict_exists_or_that_are_damaged_are_dropped(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    try:
        (start, *_) = real_starts("DialBegin")
        other = CallStart(call="1795395999.4", pbx="asterisk", started_at=50.0,
                          trunk_uid="1795395999.4", trunk_channel="PJSIP/trunk-00000004")
        assert await open_calls.keep_open_call(store, start, 1.0)
        assert await open_calls.keep_open_call(store, other, 1.0)
        async with store.transaction("test") as db:
            # a verdict that went in without the trigger (a row kept by an older build)
            await db.execute("DROP TRIGGER open_calls_decided")
        await call_record.record_outcome(store, verdict(start), 2.0)
        async with store.transaction("test") as db:
            await db.execute("INSERT INTO open_calls VALUES ('bad', 'asterisk', 1, 1, "
                             "'{\"call\": \"bad\"}')")
        assert await open_calls.load_open_calls(store) == [other]
        rows = await store.fetchall("SELECT call_id FROM open_calls")
        assert [r["call_id"] for r in rows] == [other.call]
        assert await open_calls.forget_open_call(store, other.call)
        assert not await open_calls.forget_open_call(store, other.call)
    finally:
        await store.close()


async def test_migration_3_from_a_version_2_database(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + MIGRATIONS[1] + "\nPRAGMA user_version = 2;")
    store = await Store.open(path)
    try:
        assert LATEST >= 3 and await store.schema_version() == LATEST
        (start, *_) = real_starts("DialBegin")
        assert await open_calls.keep_open_call(store, start, 1.0)
        assert await open_calls.load_open_calls(store) == [start]
    finally:
        await store.close()


async def test_keeper_writes_reports_in_order_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = await Store.open(path)
    keeper = OpenCallKeeper(store, clock=lambda: 100.0)
    starts = real_starts("Hangup")
    for s in starts:
        keeper.report(s)
    await keeper.drain()
    assert (keeper.kept, keeper.failed) == (len(starts), 0)
    await store.close()  # the daemon is killed here; the store is what survives
    store = await Store.open(path)
    try:
        restored = await OpenCallKeeper(store, clock=lambda: 200.0).load("asterisk")
        assert restored == [starts[-1]]
        t = CallTracker(TrackerConfig(settle_s=1.0))
        assert t.seed(restored) == 1
        t.resync_begin()  # the PBX no longer lists it: it ended while we were down
        (o,) = t.resync_end() + t.tick(300.0)
        # the Dial's NOANSWER was seen before the crash: missed, with its DID
        assert (o.call, o.direction, o.verdict, o.reason, o.did) == (
            starts[0].call, "inbound", "missed", "noanswer", "+15559870000")
    finally:
        await store.close()


async def test_keeper_logs_and_counts_a_store_it_cannot_write(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    await store.close()  # every write now fails
    keeper = OpenCallKeeper(store, clock=lambda: 1.0)
    (start, *_) = real_starts("DialBegin")
    keeper.report(start)
    await asyncio.wait_for(keeper.drain(), 5)
    assert (keeper.kept, keeper.failed) == (0, 1)


async def test_update_waiting_when_the_call_ends_is_not_written(tmp_path: Path) -> None:
    """The tracker reports a call's last progress in the tick that ends it: that write
    would only wait in front of the verdict's; the rows kept while it rang stay."""
    store = await Store.open(tmp_path / "t.db")
    try:
        starts = real_starts("Hangup")
        keeper = OpenCallKeeper(store, lambda: 101.0)
        keeper.report(starts[0])
        await keeper.drain()
        keeper.report(starts[-1])  # the last progress, reported with the end
        keeper.ended(starts[-1].call)
        await keeper.drain()
        assert (keeper.kept, keeper.skipped) == (1, 1)
        (kept,) = await open_calls.load_open_calls(store, "asterisk")
        assert kept == starts[0]  # still there until the verdict commits
    finally:
        await store.close()
