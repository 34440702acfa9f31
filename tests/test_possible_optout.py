"""Issue 14: a possible opt-out holds the number until staff decide.

Real store, outbox, pipeline, inbound handler and staff desk (tests/daemon_fakes config);
only the clock is the test's. The missed calls are daemon_fakes' outcome() (the Asterisk
direct-noanswer capture's caller and DID).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tests.daemon_fakes import CALLER, DID, NOW, STAFF, Clock, make_config, opened, outcome
from textback.config import Config
from textback.inbound.handler import InboundHandler
from textback.inbound.possible_optout import parse_decision, staff_prompt
from textback.migrations import LATEST
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.store import Store

CLARIFY = "{business}: Reply STOP to stop texts from us, or tell us how we can help."


def _with_clarify(config: Config) -> Config:
    did = dataclasses.replace(config.dids[0], possible_optout_text=CLARIFY)
    return dataclasses.replace(config, dids=(did,))


class Rig:
    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.outbox = Outbox(store, config=config)
        self.pipeline = CallPipeline(store, self.outbox, config, clock=clock)
        self.inbound = InboundHandler(store, self.outbox, config, clock=clock)

    async def rows(self, kind: str | None = None, number: str | None = None
                   ) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.store.fetchall(
            "SELECT * FROM outbox WHERE (:k IS NULL OR kind = :k) AND "
            "(:n IS NULL OR number = :n) ORDER BY id", {"k": kind, "n": number})]

    async def say(self, number: str, text: str, at: float) -> None:
        await self.inbound.receive(number=number, text=text, did=DID, via="modem:a", at=at)

    async def code(self) -> str:
        row = await self.store.fetchone("SELECT code FROM conversations WHERE number = ?",
                                        (CALLER,))
        assert row is not None
        return str(row["code"])

    async def reviews(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.store.fetchall(
            "SELECT * FROM optout_reviews ORDER BY id")]


def test_decision_words() -> None:
    assert parse_decision("OPTOUT") == parse_decision("opt-out") == parse_decision("1") \
        == "optout"
    assert parse_decision("NOTOPTOUT") == parse_decision("not an opt out") \
        == parse_decision("2") == "not-optout"
    assert parse_decision("see you at 3") is None
    prompt = staff_prompt(CALLER, "you need to stop", "4F2A9C", missed_at=None, now=NOW,
                          tz="UTC")
    assert prompt == ("Possible opt-out? Reply from +1 555-123-0001 (no recent missed call): "
                      "you need to stop. No texts go to them until you decide: reply "
                      "\"4F2A9C OPTOUT\" if it is an opt-out, \"4F2A9C NOTOPTOUT\" if not.")


async def test_hold_cancels_queued_texts_and_tells_staff_at_once(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, make_config(tmp_path), Clock(NOW))
        await rig.pipeline.handle(outcome("c1", ended_at=NOW))
        (first,) = await rig.rows("textback")
        assert first["state"] == "queued"
        await rig.say(CALLER, "you need to stop", NOW + 60)
        (first,) = await rig.rows("textback")
        assert first["state"] == "cancelled" and first["cancel_reason"] == "possible-optout"
        (prompt,) = await rig.rows("staff-forward")
        code = await rig.code()
        assert prompt["number"] == STAFF and prompt["not_before"] == NOW + 60
        assert prompt["body"].startswith("Possible opt-out? Reply from +1 555-123-0001")
        assert f'"{code} OPTOUT"' in prompt["body"] and f'"{code} NOTOPTOUT"' in prompt["body"]
        (review,) = await rig.reviews()
        assert review["state"] == "pending" and review["code"] == code
        assert review["clarified_at"] is None                 # default: no clarification
        assert [r["kind"] for r in await rig.rows(number=CALLER)] == ["textback"]
        assert await store.schema_version() == LATEST


async def test_no_automatic_text_of_any_kind_while_held(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, make_config(tmp_path), Clock(NOW))
        await rig.say(CALLER, "🛑", NOW)
        await rig.say(CALLER, "HELP", NOW + 10)                         # no canned answer
        rig.clock.t = NOW + 100
        await rig.pipeline.handle(outcome("c2", ended_at=NOW + 100))    # a new missed call
        texts = await rig.rows(number=CALLER)
        assert {(r["kind"], r["state"], r["cancel_reason"]) for r in texts} == {
            ("help", "cancelled", "possible-optout"),
            ("textback", "cancelled", "possible-optout")}
        call = await store.fetchone("SELECT decision, skip_reason FROM calls WHERE call_id "
                                    "= 'c2'")
        assert call is not None and tuple(call) == ("cancelled", "possible-optout")
        # a staff relay is refused until someone decides
        code = await rig.code()
        await rig.say(STAFF, f"{code} Sure, see you at 3", NOW + 200)
        assert await rig.rows("relay") == []
        (answer,) = await rig.rows("staff-answer")
        assert "may have opted out" in answer["body"] and f"{code} NOTOPTOUT" in answer["body"]


async def test_staff_decides_optout(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, make_config(tmp_path), Clock(NOW))
        await rig.say(CALLER, "I want to cancel", NOW)
        code = await rig.code()
        await rig.say(STAFF, f"{code.lower()} optout", NOW + 300)
        (review,) = await rig.reviews()
        assert review["state"] == "optout" and review["decided_by"] == STAFF
        opted = await store.fetchone("SELECT opted_out, source FROM opt_outs WHERE number = ?",
                                     (CALLER,))
        assert opted is not None and tuple(opted) == (1, "staff-review")
        assert await rig.rows("optout-confirm") == []    # no late confirmation
        (answer,) = await rig.rows("staff-answer")
        assert "is opted out" in answer["body"]
        rig.clock.t = NOW + 400
        await rig.pipeline.handle(outcome("c3", ended_at=NOW + 400))
        call = await store.fetchone("SELECT decision, skip_reason FROM calls WHERE call_id "
                                    "= 'c3'")
        assert call is not None and tuple(call) == ("skip", "opted-out")


async def test_staff_decides_not_optout_and_texts_go_again(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, make_config(tmp_path), Clock(NOW))
        await rig.say(CALLER, "can you just stop", NOW)
        code = await rig.code()
        await rig.say(STAFF, f"{code} 2", NOW + 300)
        (review,) = await rig.reviews()
        assert review["state"] == "not-optout"
        rig.clock.t = NOW + 305
        await rig.pipeline.handle(outcome("c4", ended_at=NOW + 305))
        (first,) = await rig.rows("textback")
        assert first["state"] == "queued"
        await rig.say(STAFF, f"{code} Sorry for the noise, we'll call at 3", NOW + 310)
        (relay,) = await rig.rows("relay")
        assert relay["state"] == "queued" and relay["number"] == CALLER
        # a second decision has nothing to decide
        await rig.say(STAFF, f"{code} OPTOUT", NOW + 500)
        answers = await rig.rows("staff-answer")
        assert "no possible opt-out is waiting" in answers[-1]["body"]
        assert await store.fetchone("SELECT 1 FROM opt_outs WHERE number = ?",
                                    (CALLER,)) is None


async def test_one_clarification_text_when_configured(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, _with_clarify(make_config(tmp_path)), Clock(NOW))
        await rig.say(CALLER, "you need to stop", NOW)
        await rig.say(CALLER, "🛑", NOW + 30)           # still pending: no second one
        (clarify,) = await rig.rows("possible-optout-clarify")
        assert clarify["state"] == "queued" and clarify["number"] == CALLER
        assert clarify["body"] == ("Acme Plumbing: Reply STOP to stop texts from us, or tell "
                                   "us how we can help.")
        reviews = await rig.reviews()
        assert len(reviews) == 2 and reviews[0]["clarified_at"] == NOW
        assert reviews[1]["clarified_at"] is None


async def test_customer_stop_settles_the_review(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, make_config(tmp_path), Clock(NOW))
        await rig.say(CALLER, "you need to stop", NOW)
        await rig.say(CALLER, "STOP", NOW + 20)
        (review,) = await rig.reviews()
        assert review["state"] == "optout" and review["decided_by"] == "customer"
        (confirm,) = await rig.rows("optout-confirm")
        assert confirm["state"] == "queued"          # the STOP's own confirmation goes


async def test_possible_optout_from_an_opted_out_number_is_just_forwarded(
        tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, make_config(tmp_path), Clock(NOW))
        await rig.say(CALLER, "STOP", NOW)
        await rig.say(CALLER, "you need to stop", NOW + 20)
        assert await rig.reviews() == []
        (fwd,) = await rig.rows("staff-forward")
        assert fwd["body"].startswith("Reply from")
