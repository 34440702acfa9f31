"""CallPipeline: record → cancel the reached → policy → outbox, on a real store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import phonenumbers
import pytest

from tests.daemon_fakes import CALLER, DID, NOW, Clock, lab_gate, make_config, opened, outcome
from textback.outbound import call_record
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.pbx.call_start import CallStart
from textback.store import Store, StoreUnavailable

T = TypeVar("T")


def pipeline_for(store: Store, tmp: Path, *, send_delay: float = 0.0,
                 clock: Clock | None = None) -> tuple[CallPipeline, Outbox, list[int]]:
    woken: list[int] = []
    outbox = Outbox(store, config=lab_gate())
    pipe = CallPipeline(store, outbox, make_config(tmp, send_delay=send_delay),
                        clock=clock or Clock(), wake=lambda: woken.append(1),
                        retry_base_s=0.01, retry_max_s=0.05)
    return pipe, outbox, woken


async def outbox_rows(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.fetchall("SELECT * FROM outbox ORDER BY id")]


async def test_missed_call_recorded_before_it_is_queued(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        pipe, outbox, woken = pipeline_for(store, tmp_path)
        seen: list[dict[str, Any] | None] = []
        real_enqueue = outbox.enqueue_in

        def enqueue_in(db: Any, **kw: Any) -> Any:
            # the record must already exist, in the same transaction
            row = db.execute("SELECT verdict FROM calls WHERE call_id = ?",
                             (kw["call_id"],)).fetchone()
            seen.append(dict(row) if row else None)
            return real_enqueue(db, **kw)

        outbox.enqueue_in = enqueue_in  # type: ignore[method-assign]
        handled = await pipe.handle(outcome("1795395183.0"))
        assert handled.action == "queued" and handled.recorded
        assert seen and seen[0] is not None and seen[0]["verdict"] == "missed"
        call = await call_record.call(store, "1795395183.0")
        assert call is not None and call["decision"] == "text"
        (row,) = await outbox_rows(store)
        assert row["number"] == CALLER and row["did"] == DID and row["state"] == "queued"
        assert "Acme Plumbing" in row["body"] and "STOP" in row["body"]
        assert woken


async def test_store_failure_while_queueing_rolls_back_record_and_all(tmp_path: Path) -> None:
    """Record, decision and text are one transaction: the store failing at the enqueue
    leaves nothing (no record without its decision); the verdict, held by the caller, is
    retried and queued exactly once."""
    async with opened(tmp_path) as store:
        pipe, outbox, _ = pipeline_for(store, tmp_path)

        def broken(db: Any, **kw: Any) -> Any:
            raise sqlite3.OperationalError("database or disk is full")

        real = outbox.enqueue_in
        outbox.enqueue_in = broken  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable):
            await pipe.handle(outcome("c1"))
        assert await call_record.call(store, "c1") is None
        outbox.enqueue_in = real  # type: ignore[method-assign]
        assert (await pipe.handle(outcome("c1"))).action == "queued"
        assert (await pipe.handle(outcome("c1"))).action == "duplicate"
        assert len(await outbox_rows(store)) == 1


async def test_record_survives_a_failed_decision_and_is_redecided(tmp_path: Path) -> None:
    """A failure that is not the store's (a bug while deciding or queueing): the calls of
    the batch are still recorded, undecided, and a restart's redecide queues each once."""
    async with opened(tmp_path) as store:
        pipe, outbox, _ = pipeline_for(store, tmp_path)

        def broken(db: Any, **kw: Any) -> Any:
            raise RuntimeError("a bug in the gate")

        real = outbox.enqueue_in
        outbox.enqueue_in = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await pipe.handle(outcome("c1"))
        outbox.enqueue_in = real  # type: ignore[method-assign]
        undecided = await call_record.undecided_calls(store)
        assert [o.call for o in undecided] == ["c1"]
        assert (await pipe.handle(outcome("c1"))).action == "duplicate"
        assert (await pipe.redecide(undecided[0])).action == "queued"
        assert (await pipe.redecide(undecided[0])).action in ("queued", "skipped")
        assert len(await outbox_rows(store)) == 1
        assert await call_record.undecided_calls(store) == []


async def test_duplicate_verdict_queues_no_second_text(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        pipe, _, _ = pipeline_for(store, tmp_path)
        first = await pipe.handle(outcome("c1"))
        again = await pipe.handle(outcome("c1"))
        conflicting = await pipe.handle(outcome("c1", reason="busy"))
        assert first.action == "queued"
        assert again.action == "duplicate" and not again.recorded
        assert conflicting.action == "duplicate"
        assert len(await outbox_rows(store)) == 1


async def test_answered_internal_outbound_withheld_never_texted(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        pipe, _, _ = pipeline_for(store, tmp_path)
        results = [
            await pipe.handle(outcome("ans", verdict="answered", reason="answered")),
            await pipe.handle(outcome("int", direction="internal", verdict="ignored",
                                      reason="internal", caller="101", did=None)),
            await pipe.handle(outcome("out", direction="outbound", verdict="ignored",
                                      reason="outbound", callee=CALLER, caller="101")),
            await pipe.handle(outcome("wh", caller=None, withheld=True)),
        ]
        assert [r.action for r in results] == ["ignored", "ignored", "ignored", "skipped"]
        assert results[3].reason == "withheld"
        assert await outbox_rows(store) == []
        # every verdict is stored, answered and ignored too
        calls = await store.fetchall("SELECT call_id, verdict, decision, skip_reason "
                                     "FROM calls ORDER BY id")
        assert [c["call_id"] for c in calls] == ["ans", "int", "out", "wh"]
        assert calls[3]["decision"] == "skip" and calls[3]["skip_reason"] == "withheld"


async def test_skip_reasons_are_stored(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        pipe, _, _ = pipeline_for(store, tmp_path)
        short = await pipe.handle(outcome("s", reason="abandon", ring_s=1.0))
        unknown = await pipe.handle(outcome("u", did="+15559879999"))
        assert (short.reason, unknown.reason) == ("short-abandon", "unknown-did")
        for call_id, reason in (("s", "short-abandon"), ("u", "unknown-did")):
            row = await call_record.call(store, call_id)
            assert row is not None
            assert (row["decision"], row["skip_reason"]) == ("skip", reason)
        assert await outbox_rows(store) == []


async def test_cooldown_second_missed_call_same_day(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        pipe, _, _ = pipeline_for(store, tmp_path, clock=clock)
        assert (await pipe.handle(outcome("c1"))).action == "queued"
        clock.t += 3600
        second = await pipe.handle(outcome("c2", ended_at=clock.t))
        assert (second.action, second.reason) == ("skipped", "cooldown")
        clock.t += 25 * 3600  # past the default 24 h
        assert (await pipe.handle(outcome("c3", ended_at=clock.t))).action == "queued"
        assert len(await outbox_rows(store)) == 2


async def test_answered_call_during_send_delay_cancels_the_text(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        pipe, _, _ = pipeline_for(store, tmp_path, send_delay=10, clock=clock)
        queued = await pipe.handle(outcome("c1"))
        (row,) = await outbox_rows(store)
        assert row["not_before"] == NOW + 10
        clock.t += 4  # the caller rings again and someone answers
        await pipe.handle(outcome("c2", verdict="answered", reason="answered",
                                  ended_at=clock.t))
        (row,) = await outbox_rows(store)
        assert row["id"] == queued.outbox_id
        assert (row["state"], row["cancel_reason"]) == ("cancelled", "reached")
        call = await call_record.call(store, "c1")
        assert call is not None and call["decision"] == "cancelled"


async def test_connected_callback_during_send_delay_cancels_the_text(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        pipe, _, _ = pipeline_for(store, tmp_path, send_delay=10, clock=clock)
        await pipe.handle(outcome("c1"))
        clock.t += 5  # staff call the number back and get through
        await pipe.handle(outcome("o1", direction="outbound", verdict="ignored",
                                  reason="outbound", caller="101", callee=CALLER,
                                  connected=True, did=None))
        (row,) = await outbox_rows(store)
        assert row["state"] == "cancelled"
        # an outbound call nobody picked up reaches nobody: a later text stays queued
        clock.t += 30 * 3600
        await pipe.handle(outcome("c2", ended_at=clock.t))
        await pipe.handle(outcome("o2", direction="outbound", verdict="ignored",
                                  reason="outbound", caller="101", callee=CALLER,
                                  connected=False, did=None))
        assert [r["state"] for r in await outbox_rows(store)] == ["cancelled", "queued"]


class FlakyStore(Store):
    """The real store, whose ``record_outcome`` transaction fails ``failures`` times
    (database locked)."""

    failures = 0
    attempts = 0

    def _maybe_fail(self, operation: str) -> None:
        if operation == "record_outcome":
            self.attempts += 1
            if self.failures > 0:
                self.failures -= 1
                raise StoreUnavailable(operation,
                                       sqlite3.OperationalError("database is locked"))

    @asynccontextmanager
    async def transaction(self, operation: str) -> AsyncIterator[Any]:
        self._maybe_fail(operation)
        async with super().transaction(operation) as db:
            yield db

    async def run(self, operation: str, body: Callable[[Any], T]) -> T:
        self._maybe_fail(operation)
        return await super().run(operation, body)


async def test_store_unavailable_holds_verdicts_in_order_and_retries(tmp_path: Path) -> None:
    store = await FlakyStore.open(tmp_path / "textback.db")
    try:
        assert isinstance(store, FlakyStore)
        store.failures = 3
        pipe, _, _ = pipeline_for(store, tmp_path)
        task = asyncio.create_task(pipe.run())
        callers = ["+15552000001", "+15552000002", "+15552000003"]
        for i, number in enumerate(callers):
            pipe.submit(outcome(f"c{i}", caller=number))
        assert pipe.backlog == 3  # nothing lost while waiting
        async with asyncio.timeout(5):
            while pipe.backlog:
                await asyncio.sleep(0.01)
        task.cancel()
        # three failed tries, then the three verdicts waiting together in one transaction
        assert store.attempts == 3 + 1
        calls = await store.fetchall("SELECT call_id FROM calls ORDER BY id")
        assert [c["call_id"] for c in calls] == ["c0", "c1", "c2"]
        outbox = await outbox_rows(store)
        assert [r["number"] for r in outbox] == callers
    finally:
        await store.close()


class CountingStore(Store):
    """The real store, counting its write transactions by operation."""

    ops: list[str]

    @asynccontextmanager
    async def transaction(self, operation: str) -> AsyncIterator[Any]:
        self.ops.append(operation)
        async with super().transaction(operation) as db:
            yield db

    async def run(self, operation: str, body: Callable[[Any], T]) -> T:
        self.ops.append(operation)
        return await super().run(operation, body)


async def test_verdicts_waiting_together_are_decided_in_one_transaction(
        tmp_path: Path) -> None:
    """A burst (calls ending at once): one commit for all, in order, each call seeing the
    ones before it (the same caller twice: texted once)."""
    store = await CountingStore.open(tmp_path / "textback.db")
    try:
        assert isinstance(store, CountingStore)
        store.ops = []
        pipe, _, woken = pipeline_for(store, tmp_path)
        callers = [f"+1555{i:03d}3000" for i in range(20)]  # each its own prefix
        for i, number in enumerate(callers):
            pipe.submit(outcome(f"b{i}", caller=number))
        pipe.submit(outcome("again", caller=callers[0]))  # the first caller, again
        pipe.submit(outcome("b3", caller=callers[3]))  # a duplicate verdict
        await pipe.drain()
        assert store.ops == ["record_outcome"]
        actions = [h.action for h in pipe.handled]
        assert actions == ["queued"] * 20 + ["skipped", "duplicate"]
        rows = await outbox_rows(store)
        assert [r["number"] for r in rows] == callers
        assert woken  # the dispatcher was told
    finally:
        await store.close()


async def test_follow_ups_written_with_the_text_dispatcher_woken_first(
        tmp_path: Path) -> None:
    """The follow-up rows go in the decide transaction (no second transaction for the
    dispatcher's claim to wait behind); after the commit the dispatcher is woken before
    the follow-up loop."""
    async with opened(tmp_path) as store:
        pipe, _, woken = pipeline_for(store, tmp_path)
        order: list[str] = []

        class FollowUpsProbe:
            def schedule_in(self, db: Any, call_id: str, *args: Any) -> list[float]:
                queued = db.execute("SELECT 1 FROM outbox WHERE call_id = ?",
                                    (call_id,)).fetchone() is not None
                order.append(f"rows (text queued {queued}, in_transaction "
                             f"{db.in_transaction}, woken {len(woken)})")
                return [1.0]

            def scheduled(self, *args: Any) -> None:
                order.append(f"poked (woken {len(woken)})")

        pipe.followups = FollowUpsProbe()  # type: ignore[assignment]
        assert (await pipe.handle(outcome("c1"))).action == "queued"
        assert order == ["rows (text queued True, in_transaction True, woken 0)",
                         "poked (woken 1)"]


async def test_a_ringing_caller_s_number_is_worked_out_before_the_hang_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``expect`` (the daemon calls it on CallStarted) parses the caller's number while
    the phone rings: deciding the call after its hang-up parses nothing more."""
    parses: list[str] = []
    real_parse = phonenumbers.parse

    def counting(number: str, *args: Any, **kw: Any) -> Any:
        parses.append(number)
        return real_parse(number, *args, **kw)

    monkeypatch.setattr(phonenumbers, "parse", counting)
    async with opened(tmp_path) as store:
        pipe, _, _ = pipeline_for(store, tmp_path)
        pipe.warm_up()
        for caller, ringing in (("+12125550187", True), ("+12125550188", False)):
            if ringing:
                pipe.expect(CallStart(call=f"c-{caller}", pbx="asterisk", started_at=NOW,
                                      trunk_uid="1.1", trunk_channel="PJSIP/trunk-1",
                                      caller_raw=caller, did_raw=DID))
            parses.clear()
            await pipe.handle(outcome(f"c-{caller}", caller=caller))
            assert (parses == []) is ringing, parses
