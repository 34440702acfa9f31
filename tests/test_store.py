"""Store: migrations, idempotent verdicts, consent, locked database, disk full."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import ASTERISK_TRACES

from textback.config import default_policy
from textback.inbound import optout
from textback.migrations import LATEST
from textback.outbound import call_record
from textback.outbound.policy_facts import policy_snapshot
from textback.pbx.outcome import CallOutcome
from textback.store import Store, StoreUnavailable

POLICY = default_policy()


def _expected() -> list[CallOutcome]:
    """The real verdicts of the shared Asterisk captures (expected.jsonl)."""
    out = []
    for line in (ASTERISK_TRACES / "expected.jsonl").read_text().splitlines():
        r = json.loads(line)
        r.pop("file")
        out.append(CallOutcome(**r))
    return out


async def test_migrates_to_latest_and_reopens(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "a" / "t.db")
    assert await store.schema_version() == LATEST
    mode = await store.fetchone("PRAGMA journal_mode")
    assert mode is not None and mode[0] == "wal"
    await store.close()
    again = await Store.open(tmp_path / "a" / "t.db")
    assert await again.schema_version() == LATEST
    await again.close()


async def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(RuntimeError, match="upgrade textback"):
        await Store.open(path)


async def test_every_verdict_recorded_once(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    outcomes = _expected()
    for o in outcomes:
        assert (await call_record.record_outcome(store, o, 100.0)).new
    for o in outcomes:
        result = await call_record.record_outcome(store, o, 200.0)
        assert not result.new and not result.conflict and result.stored_verdict == o.verdict
    rows = await store.fetchall("SELECT verdict, count(*) FROM calls GROUP BY verdict")
    counts = {r[0]: r[1] for r in rows}
    assert counts == {
        v: sum(o.verdict == v for o in outcomes) for v in {o.verdict for o in outcomes}}
    # consent: one row per inbound call with a number (answered too: the call is the record)
    consent = await store.fetchall("SELECT call_id FROM consent")
    assert len(consent) == sum(o.direction == "inbound" and bool(o.caller) for o in outcomes)
    await store.close()


async def test_conflicting_duplicate_is_reported_not_applied(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    missed = _expected()[0]
    await call_record.record_outcome(store, missed, 1.0)
    other = CallOutcome(**{**missed.to_record(), "verdict": "answered", "reason": "answered"})
    result = await call_record.record_outcome(store, other, 2.0)
    assert (result.new, result.conflict, result.stored_verdict) == (False, True, "missed")
    assert (await call_record.call(store, missed.call) or {})["verdict"] == "missed"
    await store.close()


async def test_skip_and_undecided(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    outcomes = _expected()
    for o in outcomes:
        await call_record.record_outcome(store, o, 1.0)
    undecided = await call_record.undecided_calls(store)
    assert [o.call for o in undecided] == [
        o.call for o in outcomes if o.verdict == "missed" and o.direction == "inbound"]
    assert undecided[0] == outcomes[0]
    first = outcomes[0].call
    assert await call_record.record_skip(store, first, "short-abandon", "1 s", 2.0, POLICY)
    assert not await call_record.record_skip(store, outcomes[0].call, "cooldown", "", 3.0, POLICY)
    row = await call_record.call(store, outcomes[0].call)
    assert row is not None and (row["decision"], row["skip_reason"]) == ("skip", "short-abandon")
    await store.close()


async def test_locked_database_raises_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = await Store.open(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(StoreUnavailable) as err:
        await call_record.record_outcome(store, _expected()[0], 1.0)
    assert err.value.kind == "locked"
    other.execute("ROLLBACK")
    other.close()
    # retry works, nothing lost
    assert (await call_record.record_outcome(store, _expected()[0], 1.0)).new
    await store.close()


async def test_disk_full_raises_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    pages = await store.fetchone("PRAGMA page_count")
    assert pages is not None
    await store.connection.execute(f"PRAGMA max_page_count = {pages[0]}")
    big = CallOutcome(**{**_expected()[0].to_record(), "call": "big"},
                      extra={"blob": "x" * 200_000})
    with pytest.raises(StoreUnavailable) as err:
        await call_record.record_outcome(store, big, 1.0)
    assert err.value.kind == "full"
    assert await call_record.call(store, "big") is None
    assert not store.connection.in_transaction
    await store.connection.execute("PRAGMA max_page_count = 1000000")
    assert (await call_record.record_outcome(store, big, 1.0)).new
    await store.close()


async def test_policy_snapshot_counts(tmp_path: Path) -> None:
    from tests.daemon_fakes import lab_gate
    from textback.outbound.outbox import Outbox

    store = await Store.open(tmp_path / "t.db")
    outbox = Outbox(store, config=lab_gate())
    n = "+15551230001"
    for i, (num, t) in enumerate([(n, 1000.0), (n, 4000.0), ("+15551239999", 4500.0),
                                  ("+15559990000", 4600.0)]):
        await outbox.enqueue(call_id=f"c{i}", kind="textback", number=num, did="+15559870000",
                             body="hi", senders=["sip"], not_before=t, now=t)
    cancelled = await outbox.enqueue(call_id="c9", kind="textback", number=n,
                                     did="+15559870000", body="x", senders=["sip"],
                                     not_before=4700.0, now=4700.0)
    await outbox.cancel(cancelled.id, "reached", 4701.0)
    answered = CallOutcome("a1", "inbound", n, False, "+15559870000", "answered", "answered",
                           ended_at=4800.0)
    await call_record.record_outcome(store, answered, 4801.0)
    await optout.set_opt_out(store, n, True, 4900.0, "keyword")
    snap = await policy_snapshot(store, n, "+15559870000", 5000.0, "+1555123", POLICY)
    assert snap.opted_out and snap.last_text_at == 4000.0
    assert (snap.texts_to_number_day, snap.texts_to_prefix_hour, snap.texts_global_hour) == \
        (2, 2, 3)
    assert snap.reached_at == 4800.0 and snap.failed_deliveries == 0
    other = await policy_snapshot(store, n, "+15559870002", 5000.0, "+1555123", POLICY)
    assert other.last_text_at is None  # cooldown is per DID
    await store.close()


async def test_burst_count_pause_and_alert_rows(tmp_path: Path) -> None:
    from dataclasses import replace

    from textback.config import default_policy

    policy = replace(default_policy(), burst_calls=3, burst_window_s=600.0,
                     burst_pause_s=1800.0)
    store = await Store.open(tmp_path / "t.db")
    try:
        for i, t in enumerate((100.0, 500.0, 900.0)):
            missed = CallOutcome(f"m{i}", "inbound", f"+4474001234{i:02d}", False,
                                 "+15559870000", "missed", "noanswer", ended_at=t)
            await call_record.record_outcome(store, missed, t)
        other = CallOutcome("x", "inbound", "+447400999999", False, "+15559870000",
                            "answered", "answered", ended_at=950.0)
        await call_record.record_outcome(store, other, 950.0)
        snap = await policy_snapshot(store, "+447400123499", None, 1000.0, "+4474001", policy)
        assert snap.prefix_missed_window == 2  # m0 is outside the 10 min window
        assert snap.country == "GB" and snap.prefix_paused_until is None
        assert (await call_record.call(store, "m2") or {})["country"] == "GB"

        assert await call_record.record_skip(store, "m2", "burst", "3 in 10 min", 1000.0, policy)
        (pause,) = await call_record.burst_pauses(store)
        assert (pause.prefix, pause.call_id, pause.calls) == ("+4474001", "m2", 2)
        assert (pause.started_at, pause.until_at) == (1000.0, 2800.0)
        # one pause
        assert not await call_record.record_skip(store, "m2", "burst", "again", 1001.0, policy)
        assert len(await call_record.burst_pauses(store)) == 1

        paused = await policy_snapshot(store, "+447400123499", None, 1500.0, "+4474001", policy)
        assert paused.prefix_paused_until == 2800.0 and paused.prefix_missed_window == 0
        free = await policy_snapshot(store, "+447400999999", None, 1500.0, "+4474009", policy)
        assert free.prefix_paused_until is None
        assert (await policy_snapshot(store, "+447400123499", None, 2800.0, "+4474001", policy)
                ).prefix_paused_until is None

        assert await call_record.burst_pauses(store, unalerted=True) == [pause]
        assert await call_record.mark_burst_alerted(store, pause.id, 1002.0)
        assert not await call_record.mark_burst_alerted(store, pause.id, 1003.0)
        assert await call_record.burst_pauses(store, unalerted=True) == []
    finally:
        await store.close()


async def test_country_count_is_texts_to_callers_of_that_country(tmp_path: Path) -> None:
    import dataclasses

    from tests.daemon_fakes import lab_gate
    from textback.outbound.outbox import Outbox

    store = await Store.open(tmp_path / "t.db")
    lab = lab_gate()  # texts to GB and DE callers, an alert to a staff phone in New York
    outbox = Outbox(store, config=dataclasses.replace(
        lab, policy=dataclasses.replace(lab.policy, allowed_countries=("GB", "DE")),
        staff_numbers=frozenset({"+12125550101"})))
    try:
        for i, (number, t) in enumerate([("+447400123401", 100.0), ("+447400123402", 3000.0),
                                         ("+4915112345678", 3100.0)]):
            await call_record.record_outcome(store, CallOutcome(f"c{i}", "inbound", number, False,
                                                   "+15559870000", "missed", "noanswer",
                                                   ended_at=t), t)
            await outbox.enqueue(call_id=f"c{i}", kind="textback", number=number,
                                 did="+15559870000", body="hi", senders=["sip"],
                                 not_before=t, now=t)
        # a staff alert tied to a GB call is not a text to GB
        await outbox.enqueue(call_id="c1", kind="burst-alert:+12125550101",
                             number="+12125550101", did="+15559870000", body="alert",
                             senders=["sip"], not_before=3000.0, now=3000.0)
        snap = await policy_snapshot(store, "+447400123499", None, 3700.0, "+4474001", POLICY)
        assert (snap.country, snap.texts_to_country_hour) == ("GB", 1)  # c0 is > 1 h old
        assert (await policy_snapshot(store, "+15551230001", None, 3700.0, "+1555123", POLICY)
                ).texts_to_country_hour == 0
    finally:
        await store.close()


async def test_migration_2_upgrades_a_version_1_store(tmp_path: Path) -> None:
    import sqlite3

    from textback.migrations import MIGRATIONS

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        db.execute("INSERT INTO calls (call_id, pbx, direction, caller, withheld, verdict, "
                   "reason, decided_at, record) VALUES ('old', 'asterisk', 'inbound', "
                   "'+447400123401', 0, 'missed', 'noanswer', 1.0, '{}')")
    db.close()
    store = await Store.open(path)
    try:
        assert await store.schema_version() == LATEST
        old = await call_record.call(store, "old")
        assert old is not None and old["country"] is None  # no backfill: counts for none
        assert await call_record.burst_pauses(store) == []
    finally:
        await store.close()


async def test_failed_deliveries_count_texts_not_parts(tmp_path: Path) -> None:
    """A 2-part text whose parts both failed is one failed delivery (policy counts texts)."""
    from tests.daemon_fakes import lab_gate
    from textback.outbound.outbox import Outbox

    store = await Store.open(tmp_path / "t.db")
    outbox = Outbox(store, config=lab_gate())
    n = "+15551230001"
    item = await outbox.enqueue(call_id="c1", kind="textback", number=n, did="+15559870000",
                                body="two parts", senders=["modem:a"], not_before=0, now=0)
    claimed = await outbox.claim_next(1.0)
    assert claimed is not None and claimed.id == item.id
    await outbox.mark_sent(item.id, [7, 8], "modem:a", 2.0)
    await outbox.part_report("modem:a", 7, False, 3.0)
    await outbox.part_report("modem:a", 8, False, 4.0)
    snap = await policy_snapshot(store, n, "+15559870000", 5.0, "+1555123", POLICY)
    assert snap.failed_deliveries == 1
    await store.close()
