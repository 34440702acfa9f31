"""InboundHandler: replies stored first; STOP/START/HELP; staff forwards; reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.daemon_fakes import CALLER, DID, NOW, STAFF, Clock, lab_gate, make_config, opened
from textback.inbound.handler import InboundHandler
from textback.outbound.outbox import Outbox
from textback.store import Store


def handler(store: Store, tmp: Path) -> tuple[InboundHandler, Outbox]:
    outbox = Outbox(store, config=lab_gate())
    return InboundHandler(store, outbox, make_config(tmp), clock=Clock()), outbox


async def outbox_rows(store: Store, kind: str | None = None) -> list[dict[str, Any]]:
    sql, params = "SELECT * FROM outbox", ()
    if kind is not None:
        sql, params = sql + " WHERE kind = ?", (kind,)  # type: ignore[assignment]
    return [dict(r) for r in await store.fetchall(sql + " ORDER BY id", params)]


async def receive(h: InboundHandler, text: str, number: str | None = CALLER,
                  at: float = NOW) -> int | None:
    return await h.receive(number=number, text=text, did=DID, via="modem:a", at=at)


async def opted_out(store: Store, number: str = CALLER) -> bool:
    row = await store.fetchone("SELECT opted_out FROM opt_outs WHERE number = ?", (number,))
    return bool(row and row["opted_out"])


async def test_stop_opts_out_cancels_queued_and_confirms_once(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, outbox = handler(store, tmp_path)
        pending = await outbox.enqueue(call_id="c1", kind="textback", number=CALLER, did=DID,
                                       body="Sorry we missed your call", senders=["modem:a"],
                                       not_before=NOW + 10, now=NOW)
        message_id = await receive(h, "STOP")
        assert message_id is not None
        assert await opted_out(store)
        assert (await outbox_rows(store, "textback"))[0]["state"] == "cancelled"
        (confirm,) = await outbox_rows(store, "optout-confirm")
        assert confirm["number"] == CALLER and "START" in confirm["body"]
        assert "Acme Plumbing" in confirm["body"]
        assert confirm["senders"] == '["modem:a", "sip"]'  # answered where it came in
        assert pending.created
        # a second STOP: still opted out, no second confirmation
        await receive(h, "stop", at=NOW + 60)
        assert len(await outbox_rows(store, "optout-confirm")) == 1
        stored = await store.fetchall("SELECT body, direction FROM messages "
                                      "WHERE direction = 'in' ORDER BY id")
        assert [m["body"] for m in stored] == ["STOP", "stop"]


async def test_start_from_opted_out_number_confirms_once(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, _ = handler(store, tmp_path)
        await receive(h, "STOP")
        await receive(h, "START", at=NOW + 60)
        assert not await opted_out(store)
        (confirm,) = await outbox_rows(store, "optin-confirm")
        assert confirm["number"] == CALLER and "STOP" in confirm["body"]
        events = await store.fetchall("SELECT action FROM opt_events ORDER BY id")
        assert [e["action"] for e in events] == ["optout", "optin"]


async def test_start_from_number_not_opted_out_is_just_a_message(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, _ = handler(store, tmp_path)
        await receive(h, "START")
        assert await outbox_rows(store, "optin-confirm") == []
        assert await store.fetchall("SELECT * FROM opt_events") == []
        (forward,) = await outbox_rows(store, "staff-forward")
        assert forward["number"] == STAFF and "START" in forward["body"]


async def test_help_answers_with_business_and_callback(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, _ = handler(store, tmp_path)
        await receive(h, "HELP")
        (answer,) = await outbox_rows(store, "help")
        assert answer["number"] == CALLER
        assert "Acme Plumbing" in answer["body"] and "+15559870001" in answer["body"]
        assert await outbox_rows(store, "staff-forward") == []


async def test_help_in_a_sentence_is_an_urgent_staff_forward(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, _ = handler(store, tmp_path)
        await receive(h, "help my basement is flooding")
        assert await outbox_rows(store, "help") == []
        (forward,) = await outbox_rows(store, "staff-forward")
        assert forward["number"] == STAFF
        assert forward["body"].startswith("URGENT")
        assert "+1 555-123-0001" in forward["body"] and "basement is flooding" in forward["body"]


async def test_opted_out_number_gets_no_help_answer(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, _ = handler(store, tmp_path)
        await receive(h, "STOP")
        await receive(h, "HELP", at=NOW + 5)
        (refused,) = await outbox_rows(store, "help")  # refused by the gate, and recorded
        assert (refused["state"], refused["cancel_reason"]) == ("skipped", "opted-out")


async def test_unknown_number_is_stored_never_dropped(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, _ = handler(store, tmp_path)
        message_id = await receive(h, "who is this?\x1b[2J", number=None)
        assert message_id is not None
        row = await store.fetchone("SELECT number, body FROM messages WHERE id = ?",
                                   (message_id,))
        assert row is not None
        assert row["number"] == "unknown" and row["body"] == "who is this?\x1b[2J"
        assert await outbox_rows(store) == []  # nobody to answer


async def test_delivery_report_marks_the_text_delivered(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h, outbox = handler(store, tmp_path)
        r = await outbox.enqueue(call_id="c1", kind="textback", number=CALLER, did=DID,
                                 body="x", senders=["modem:a"], not_before=NOW, now=NOW)
        item = await outbox.claim_next(NOW)
        assert item is not None and item.id == r.id
        await outbox.mark_sent(item.id, [42], "modem:a", NOW)
        await h.delivery_report("modem:a", 42, "delivered", NOW + 5)
        assert (await outbox_rows(store))[0]["state"] == "delivered"
        await h.delivery_report("modem:a", 99, "delivered", NOW + 5)  # unknown mr: ignored
