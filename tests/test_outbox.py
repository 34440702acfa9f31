"""Outbox: one text per call, claim, backoff, failover, crash recovery, delivery reports."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.daemon_fakes import lab_gate
from textback.config import default_policy
from textback.outbound import call_record
from textback.outbound.outbox import Outbox
from textback.outbound.policy_facts import policy_snapshot
from textback.pbx.outcome import CallOutcome
from textback.store import Store

NUMBER = "+15551230001"
DID = "+15559870000"


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = await Store.open(tmp_path / "t.db")
    yield s
    await s.close()


async def _queue(outbox: Outbox, call: str = "c1", not_before: float = 10.0,
                 senders: tuple[str, ...] = ("modem:a", "modem:b")) -> int:
    res = await outbox.enqueue(call_id=call, kind="textback", number=NUMBER, did=DID,
                               body="Sorry we missed you", senders=senders,
                               not_before=not_before, now=0.0, encoding="gsm7", parts=1)
    return res.id


async def test_second_text_for_one_call_is_impossible(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    await call_record.record_outcome(store,
        CallOutcome("c1", "inbound", NUMBER, False, DID, "missed", "noanswer"), 0.0)
    first = await outbox.enqueue(call_id="c1", kind="textback", number=NUMBER, did=DID,
                                 body="a", senders=["sip"], not_before=0, now=0)
    again = await outbox.enqueue(call_id="c1", kind="textback", number=NUMBER, did=DID,
                                 body="b", senders=["sip"], not_before=0, now=1)
    assert first.created and not again.created and again.id == first.id
    assert (await call_record.call(store, "c1") or {})["decision"] == "text"
    with pytest.raises(sqlite3.IntegrityError):  # the database itself refuses
        await store.connection.execute(
            "INSERT INTO outbox (call_id, kind, number, body, senders, state, not_before, "
            "created_at, updated_at) VALUES ('c1','textback','x','y','[]','queued',0,0,0)")
    follow = await outbox.enqueue(call_id="c1", kind="followup-2", number=NUMBER, did=DID,
                                  body="c", senders=["sip"], not_before=0, now=1)
    assert follow.created  # another kind of message for the same call is allowed


async def test_claim_respects_not_before_and_marks_sending(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    item_id = await _queue(outbox, not_before=10.0)
    assert await outbox.claim_next(9.9) is None
    assert await outbox.next_due_at() == 10.0
    item = await outbox.claim_next(10.0)
    assert item is not None and item.id == item_id and item.state == "sending"
    assert item.sender == "modem:a" and item.attempts == 1
    assert await outbox.claim_next(11.0) is None  # claimed once only


async def test_sent_then_delivered_by_parts(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    await _queue(outbox)
    item = await outbox.claim_next(10.0)
    assert item is not None
    message_id = await outbox.mark_sent(item.id, [41, 42], "modem:a", 11.0)
    assert (await outbox.get(item.id)).state == "sent"  # type: ignore[union-attr]
    assert await outbox.part_report("modem:a", 41, True, 12.0) == message_id
    assert (await outbox.get(item.id)).state == "sent"  # type: ignore[union-attr]
    assert await outbox.part_report("modem:b", 42, True, 12.0) is None  # other modem's mr
    await outbox.part_report("modem:a", 42, True, 13.0)
    assert (await outbox.get(item.id)).state == "delivered"  # type: ignore[union-attr]
    msg = await store.fetchone("SELECT status, parts FROM messages WHERE id = ?", (message_id,))
    assert msg is not None and (msg["status"], msg["parts"]) == ("delivered", 2)


async def test_failed_delivery_counts_against_the_number(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    await _queue(outbox)
    item = await outbox.claim_next(10.0)
    assert item is not None
    await outbox.mark_sent(item.id, [7], "modem:a", 11.0)
    await outbox.part_report("modem:a", 7, False, 12.0)
    assert (await outbox.get(item.id)).state == "failed"  # type: ignore[union-attr]
    snap = await policy_snapshot(store, NUMBER, DID, 20.0, "+1555123", default_policy())
    assert snap.failed_deliveries == 1


async def test_untracked_sender_is_sent_unconfirmed(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    await _queue(outbox, senders=("sip",))
    item = await outbox.claim_next(10.0)
    assert item is not None
    mid = await outbox.mark_sent(item.id, [], "sip", 11.0, tracked=False)
    row = await store.fetchone("SELECT status FROM messages WHERE id = ?", (mid,))
    assert row is not None and row["status"] == "sent-unconfirmed"


async def test_transient_errors_back_off_then_fail_over(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate(), max_attempts=3, retry_base_s=30, retry_max_s=45)
    item_id = await _queue(outbox)
    now = 10.0
    delays = []
    for _ in range(2):
        item = await outbox.claim_next(now)
        assert item is not None and item.sender == "modem:a"
        res = await outbox.mark_failed(item_id, "+CMS ERROR: 500", permanent=False, now=now)
        assert res.state == "queued" and res.not_before is not None
        delays.append(res.not_before - now)
        assert await outbox.claim_next(res.not_before - 0.001) is None
        now = res.not_before
    assert delays == [30.0, 45.0]  # 30·2^0, then 30·2^1 capped at 45
    item = await outbox.claim_next(now)
    assert item is not None
    res = await outbox.mark_failed(item_id, "+CMS ERROR: 500", permanent=False, now=now)
    assert (res.state, res.sender, res.not_before) == ("queued", "modem:b", now)
    item = await outbox.claim_next(now)
    assert item is not None and item.sender == "modem:b" and item.attempts == 1
    res = await outbox.mark_failed(item_id, "modem lost", permanent=True, now=now)
    assert res.state == "failed"
    final = await outbox.get(item_id)
    assert final is not None and final.last_error == "modem:b: modem lost"


async def test_cancel_only_while_queued(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    await call_record.record_outcome(store,
        CallOutcome("c1", "inbound", NUMBER, False, DID, "missed", "noanswer"), 0.0)
    first = await _queue(outbox, "c1")
    second = await _queue(outbox, "c2")
    item = await outbox.claim_next(10.0)
    assert item is not None and item.id == first
    assert not await outbox.cancel(first, "reached", 11.0)  # too late: being sent
    assert await outbox.cancel_for_number(NUMBER, "reached", 11.0) == 1
    assert (await outbox.get(second)).state == "cancelled"  # type: ignore[union-attr]
    await outbox.mark_sent(first, [1], "modem:a", 12.0)


async def test_crash_while_sending_is_unconfirmed_not_resent(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    sending = await _queue(outbox, "c1")
    waiting = await _queue(outbox, "c2", not_before=100.0)
    assert await outbox.claim_next(10.0) is not None
    await outbox.mark_handed(sending, 10.5)  # the modem is about to get the Ctrl-Z
    # the process dies here; a new one starts
    report = await Outbox(store, config=lab_gate()).recover_after_crash(50.0)
    assert report.queued == 1 and [i.id for i in report.unconfirmed] == [sending]
    assert report.requeued == []
    assert (await outbox.get(sending)).state == "unconfirmed"  # type: ignore[union-attr]
    assert await outbox.claim_next(60.0) is None
    item = await outbox.claim_next(100.0)
    assert item is not None and item.id == waiting


async def test_crash_resend_is_an_explicit_choice(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate(), resend_unconfirmed=True)
    sending = await _queue(outbox, "c1")
    assert await outbox.claim_next(10.0) is not None
    await outbox.mark_handed(sending, 10.5)
    report = await outbox.recover_after_crash(50.0)
    assert [i.id for i in report.requeued] == [sending] and report.unconfirmed == []
    item = await outbox.claim_next(50.0)
    assert item is not None and item.id == sending and item.attempts == 2


async def test_crash_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    s1 = await Store.open(path)
    handed = await _queue(Outbox(s1, config=lab_gate()), "c1", not_before=0.0)
    assert await Outbox(s1, config=lab_gate()).claim_next(1.0) is not None
    await Outbox(s1, config=lab_gate()).mark_handed(handed, 1.5)
    await s1.close()
    s2 = await Store.open(path)
    report = await Outbox(s2, config=lab_gate()).recover_after_crash(2.0)
    assert len(report.unconfirmed) == 1
    assert await Outbox(s2, config=lab_gate()).depth() == {"unconfirmed": 1}
    await s2.close()


async def test_claim_only_for_idle_senders(store: Store) -> None:
    """A row is claimed only when its current sender is idle; due_senders names them."""
    box = Outbox(store, config=lab_gate())
    a = await box.enqueue(call_id=None, kind="textback", number="+15551230001", did=None,
                          body="hi", senders=["modem:a", "sip"], not_before=0, now=0)
    b = await box.enqueue(call_id=None, kind="textback", number="+15551230002", did=None,
                          body="hi", senders=["modem:b"], not_before=0, now=0)
    assert await box.due_senders(1) == {"modem:a", "modem:b"}
    assert await box.claim_next(1, senders=set()) is None
    assert await box.claim_next(1, senders={"sip"}) is None
    got = await box.claim_next(1, senders={"modem:b"})
    assert got is not None and got.id == b.id
    first = await box.claim_next(1, senders={"modem:a"})
    assert first is not None and first.id == a.id
    await box.mark_failed(first.id, "modem lost", permanent=True, now=1)
    assert await box.due_senders(1) == {"sip"}
    moved = await box.claim_next(1, senders={"sip"})
    assert moved is not None and moved.id == a.id and moved.sender == "sip"


async def test_crash_before_the_channel_got_it_is_queued_again(store: Store) -> None:
    """Claimed but never handed (killed between the claim and the modem's Ctrl-Z): the
    modem has nothing, so the row is simply queued again, not left unconfirmed."""
    outbox = Outbox(store, config=lab_gate())
    claimed_only = await _queue(outbox, "c1")
    assert await outbox.claim_next(10.0) is not None
    report = await Outbox(store, config=lab_gate()).recover_after_crash(50.0)
    assert [i.id for i in report.never_handed] == [claimed_only]
    assert report.unconfirmed == [] and report.queued == 1
    item = await outbox.claim_next(50.0)
    assert item is not None and item.id == claimed_only and item.attempts == 1


async def test_handed_flag_cleared_when_a_row_goes_back_to_queue(store: Store) -> None:
    outbox = Outbox(store, config=lab_gate())
    row = await _queue(outbox, "c1")
    assert await outbox.claim_next(10.0) is not None
    await outbox.mark_handed(row, 10.5)
    await outbox.mark_failed(row, "+CMS ERROR: 500", permanent=False, now=11.0)
    again = await outbox.claim_next(1e9)
    assert again is not None and again.id == row
    report = await Outbox(store, config=lab_gate()).recover_after_crash(1e9 + 1)
    assert [i.id for i in report.never_handed] == [row] and report.unconfirmed == []
