"""Issue 12, finding 2: every outbound text goes through one gate (``textback.outbound.gate``),
taken by ``Outbox.enqueue`` itself: HELP answers, STOP/START confirmations, staff forwards
and relays, follow-ups, alerts and ``textback send``. Refusals are stored (an outbox row in
state ``skipped``, the reason in ``cancel_reason``).

The numbers: +19005550123 (US 900, premium rate), +449091234567 (UK 09, premium rate),
12345 (a short code as a modem reports it), +1555… (the fictional range the test config
lets through with ``test_number_prefixes``)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from tests.daemon_fakes import (
    CALLER,
    DID,
    NOW,
    STAFF,
    Clock,
    FakeSender,
    config_toml,
    make_config,
    opened,
    outcome,
)
from textback.daemon import status_path
from textback.inbound import optout
from textback.inbound.handler import InboundHandler
from textback.outbound import call_record
from textback.outbound.followups import FollowUps
from textback.outbound.outbox import Outbox
from textback.store import Store

PREMIUM_US = "+19005550123"
PREMIUM_GB = "+449091234567"
SHORT_CODE = "12345"
REPO = Path(__file__).resolve().parents[1]


def handler(store: Store, tmp: Path) -> InboundHandler:
    config = make_config(tmp)
    return InboundHandler(store, Outbox(store, config=config), config, clock=Clock())


async def rows(store: Store, kind: str, number: str | None = None) -> list[dict[str, Any]]:
    sql, params = "SELECT * FROM outbox WHERE kind = ?", [kind]
    if number is not None:
        sql += " AND number = ?"
        params.append(number)
    return [dict(r) for r in await store.fetchall(sql + " ORDER BY id", params)]


def going(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in found if r["state"] not in ("skipped", "cancelled")]


async def say(h: InboundHandler, number: str, text: str, at: float = NOW) -> None:
    await h.receive(number=number, text=text, did=DID, via="modem:a", at=at)


# ------------------------------------------------------------------ inbound answers


async def test_help_from_premium_numbers_and_a_short_code_gets_no_answer(
        tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="textback.outbound.outbox")
    async with opened(tmp_path) as store:
        h = handler(store, tmp_path)
        for number in (PREMIUM_US, PREMIUM_GB, SHORT_CODE):
            await say(h, number, "HELP")
        answers = await rows(store, "help")
        assert going(answers) == []
        assert {(r["number"], r["state"], r["cancel_reason"]) for r in answers} == {
            (PREMIUM_US, "skipped", "premium-rate"), (PREMIUM_GB, "skipped", "premium-rate"),
            (SHORT_CODE, "skipped", "short-code")}
    refused = [r.getMessage() for r in caplog.records if "text_refused" in r.getMessage()]
    assert len(refused) == 3
    assert "kind=help" in refused[2] and "number=12345" in refused[2] \
        and "reason=short-code" in refused[2]


async def test_missed_call_from_the_business_own_number_is_not_texted(
        tmp_path: Path) -> None:
    """The missed-call policy lets the lab DID through (+1555 is a test prefix); the gate
    knows it is the business's own number, and the call's skip records why."""
    from textback.outbound.pipeline import CallPipeline

    async with opened(tmp_path) as store:
        config = make_config(tmp_path)
        pipeline = CallPipeline(store, Outbox(store, config=config), config, clock=Clock())
        handled = await pipeline.handle(outcome("loop1", caller=DID))
        assert (handled.action, handled.reason) == ("skipped", "own-number")
        call = await call_record.call(store, "loop1")
        assert call is not None and (call["decision"], call["skip_reason"]) == (
            "skip", "own-number")
        assert going(await rows(store, "textback")) == []


async def test_200_helps_from_one_number_get_one_answer_a_day(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h = handler(store, tmp_path)
        for i in range(200):
            await say(h, CALLER, "HELP", at=NOW + i)
        answers = await rows(store, "help")
        assert len(going(answers)) == 1
        assert {r["cancel_reason"] for r in answers if r["state"] == "skipped"} == {
            "cap-kind-day"}
        await say(h, CALLER, "HELP", at=NOW + 86400 + 1)  # the next day: one more
        assert len(going(await rows(store, "help"))) == 2


async def test_stop_then_help_only_the_stop_confirmation(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h = handler(store, tmp_path)
        await say(h, CALLER, "STOP")
        await say(h, CALLER, "HELP", at=NOW + 5)
        await say(h, CALLER, "STOP", at=NOW + 6)
        sent = going([dict(r) for r in await store.fetchall("SELECT * FROM outbox")])
        assert [r["kind"] for r in sent] == ["optout-confirm"]
        (help_row,) = await rows(store, "help")
        assert (help_row["state"], help_row["cancel_reason"]) == ("skipped", "opted-out")


async def test_staff_relay_to_an_opted_out_number_is_refused_with_the_reason(
        tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        h = handler(store, tmp_path)
        await say(h, CALLER, "what time?")
        code = (await store.fetchone("SELECT code FROM conversations"))["code"]  # type: ignore[index]
        await say(h, CALLER, "STOP", at=NOW + 10)
        await say(h, STAFF, f"{code} 9am", at=NOW + 20)
        (relay,) = await rows(store, "relay")
        assert (relay["number"], relay["state"], relay["cancel_reason"]) == (
            CALLER, "skipped", "opted-out")
        (answer,) = await rows(store, "staff-answer")
        assert answer["number"] == STAFF and "opted out" in answer["body"]


async def test_staff_get_forwards_even_when_their_number_opted_out_as_a_customer(
        tmp_path: Path) -> None:
    """Staff are not customers: the opt-out list does not apply to staff kinds."""
    async with opened(tmp_path) as store:
        h = handler(store, tmp_path)
        await optout.set_opt_out(store, STAFF, True, NOW - 60, "cli")
        await say(h, CALLER, "Can you come Tuesday?")
        (forward,) = await rows(store, "staff-forward")
        assert forward["number"] == STAFF and forward["state"] == "queued"


async def test_follow_up_to_a_premium_number_is_refused(tmp_path: Path) -> None:
    clock = Clock(NOW)
    async with opened(tmp_path) as store:
        config = make_config(tmp_path)
        outbox = Outbox(store, config=config)
        followups = FollowUps(store, outbox, config, clock=clock)
        await call_record.record_outcome(store, outcome("c1", caller=PREMIUM_US), NOW)
        (due, _) = await followups.schedule("c1", PREMIUM_US, config.dids[0], NOW, NOW,
                                            None, NOW)
        clock.t = due
        (released,) = await followups.run_due()
        assert (released.action, released.reason) == ("cancelled", "premium-rate")
        texts = await rows(store, "followup-2")
        assert going(texts) == []


# ------------------------------------------------------------------ textback send


def cli_config(tmp: Path) -> Path:
    path = tmp / "textback.toml"
    path.write_text(config_toml(tmp))
    path.chmod(0o600)
    return path


def test_send_to_an_opted_out_number_is_refused_and_recorded(tmp_path: Path,
                                                             capsys: Any) -> None:
    from textback.cli import main

    path = cli_config(tmp_path)

    async def opt_out() -> None:
        async with opened(tmp_path) as store:
            await optout.set_opt_out(store, CALLER, True, NOW, "keyword")

    asyncio.run(opt_out())
    rc = main(["send", "--config", str(path), "--to", CALLER, "--text", "hi",
               "--port", str(tmp_path / "no-modem")])
    err = capsys.readouterr().err
    assert rc == 1 and "opted-out" in err

    async def recorded() -> list[dict[str, Any]]:
        async with opened(tmp_path) as store:
            return await rows(store, "manual")

    (row,) = asyncio.run(recorded())
    assert (row["number"], row["state"], row["cancel_reason"], row["body"]) == (
        CALLER, "skipped", "opted-out", "hi")


def test_send_with_the_daemon_running_queues_for_its_dispatcher(tmp_path: Path,
                                                                capsys: Any) -> None:
    from textback.cli import main
    from textback.outbound.dispatcher import Dispatcher

    path = cli_config(tmp_path)
    # the daemon's status file, with a live pid (this process stands in for the daemon)
    status_path(tmp_path / "textback.db").write_text(json.dumps({"pid": os.getpid(),
                                                             "at": time.time()}))
    rc = main(["send", "--config", str(path), "--to", CALLER, "--text", "hello there",
               "--port", str(tmp_path / "no-modem")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert re.search(r"queued as outbox row \d+ for the running daemon", out)

    async def dispatch() -> list[tuple[str, str]]:
        async with opened(tmp_path) as store:
            modem = FakeSender("modem:a")
            dispatcher = Dispatcher(Outbox(store), {"modem:a": modem}, clock=Clock(1e12))
            assert await dispatcher.pump() == 1
            await dispatcher.stop()
            (row,) = await rows(store, "manual")
            assert row["state"] == "sent"
            return modem.calls

    assert asyncio.run(dispatch()) == [(CALLER, "hello there")]


# ------------------------------------------------------------------ no way around it


def test_no_module_but_the_outbox_inserts_into_the_outbox_table() -> None:
    insert = re.compile(r"INSERT\s+(OR\s+\w+\s+)?INTO\s+outbox\b", re.I)
    offenders = []
    for path in sorted((REPO / "textback").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(REPO).as_posix()
        if rel == "textback/outbound/outbox.py":
            continue
        if insert.search(text) or re.search(r"\b_insert\(", text):
            offenders.append(rel)
    assert offenders == []
    source = (REPO / "textback" / "outbound" / "outbox.py").read_text(encoding="utf-8")
    assert len(insert.findall(source)) == 1  # the private _insert, called by enqueue only
    assert source.count(" _insert(") == 2  # its def and the one call, in enqueue_in


# ------------------------------------------------------------------ the pure gate, by rule

GATE_CASES = [
    # (kind, number, snapshot, expected reason or None when allowed)
    ("help", CALLER, {}, None),
    ("help", DID, {}, "own-number"),  # the business's own DID
    ("help", "+15559870001", {}, "own-number"),  # the DID's callback number
    ("manual", "+15559870005", {}, "own-number"),  # the modem's SIM ([[modem]] number)
    ("help", "447", {}, "short-code"),
    ("help", "+1555x", {}, "invalid-number"),
    ("relay", "+442079460123", {}, "country-not-allowed"),  # a London landline, US DID
    ("help", "+12125550101", {}, None),  # a valid New York number
    ("textback", "+12125550101", {}, None),  # US numbers are mixed: not a known landline
    ("help", CALLER, {"opted_out": True}, "opted-out"),
    ("optout-confirm", CALLER, {}, "not-opted-out"),
    ("optout-confirm", CALLER, {"opted_out": True}, None),
    ("optout-confirm", CALLER, {"opted_out": True, "confirms_since_optout": 1},
     "already-confirmed"),
    ("help", CALLER, {"kind_texts_day": 1}, "cap-kind-day"),
    ("relay", CALLER, {"kind_texts_day": 19}, None),
    ("relay", CALLER, {"texts_to_prefix_hour": 20}, "cap-prefix-hour"),
    ("manual", CALLER, {"texts_global_hour": 200}, "cap-global-hour"),
    # staff: only configured staff phones; no customer opt-out; global cap still applies
    ("staff-forward", CALLER, {}, "not-staff"),
    ("staff-forward", STAFF, {"opted_out": True}, None),
    ("burst-alert:" + STAFF, STAFF, {"texts_to_prefix_hour": 10**6}, None),
    ("callback-unknown:" + STAFF, STAFF, {"texts_global_hour": 200}, "cap-global-hour"),
    ("followup-2", PREMIUM_US, {}, "premium-rate"),
]


def test_the_gate_rule_by_rule(tmp_path: Path) -> None:
    import dataclasses

    from textback.outbound.gate import GateConfig, GateSnapshot, decide

    config = make_config(tmp_path)
    config = dataclasses.replace(config, modems=(dataclasses.replace(
        config.modems[0], number="+15559870005"),), policy=dataclasses.replace(
        config.policy, allowed_countries=("US",)))  # the test DID (+1555) is in no plan
    gate = GateConfig.from_config(config)
    got = []
    for kind, number, snap, _ in GATE_CASES:
        decision = decide(kind, number, DID, GateSnapshot(**snap), gate)
        got.append(None if decision.allowed else decision.reason)  # type: ignore[union-attr]
    assert got == [case[3] for case in GATE_CASES]


def test_kind_day_caps_config(tmp_path: Path) -> None:
    from tests.test_config import GOOD, issues, write
    from textback.config import load_config

    text = GOOD.replace("send_delay_s = 5", "send_delay_s = 5\nkind_day_caps = { help = 3 }", 1)
    caps = load_config(write(tmp_path, text)).policy.kind_day_caps
    assert caps["help"] == 3 and caps["manual"] == 10  # one key replaced, defaults kept
    assert load_config(write(tmp_path, GOOD)).policy.kind_day_caps["help"] == 1
    bad = GOOD.replace("send_delay_s = 5",
                       'send_delay_s = 5\nkind_day_caps = { hlep = 1, help = -1 }', 1)
    (found,) = issues(tmp_path, bad)
    assert found[0] == "policy.kind_day_caps" and "not text kinds: 'hlep'" in found[2]


async def test_send_wait_report_follows_the_row_the_daemon_sends(tmp_path: Path,
                                                                 capsys: Any) -> None:
    """``--wait-report`` with the daemon running: the command follows its row in the
    store (parts, then the delivery report) while the daemon's dispatcher sends it."""
    from textback.cli import main
    from textback.outbound.dispatcher import Dispatcher

    path = cli_config(tmp_path)
    status_path(tmp_path / "textback.db").write_text(json.dumps({"pid": os.getpid(),
                                                             "at": time.time()}))
    async with opened(tmp_path) as store:  # created (migrated) before the command opens it
        command = asyncio.create_task(asyncio.to_thread(main, [
            "send", "--config", str(path), "--to", CALLER, "--text", "on our way",
            "--wait-report", "60"]))
        row = None
        while row is None:  # the command runs in another thread: look for its row
            row = await store.fetchone("SELECT id FROM outbox WHERE kind = 'manual'")
            if row is None:
                assert not command.done(), capsys.readouterr()
                await asyncio.sleep(0.05)
        outbox = Outbox(store)
        modem = FakeSender("modem:a")
        dispatcher = Dispatcher(outbox, {"modem:a": modem}, clock=time.time)
        assert await dispatcher.pump() == 1
        await dispatcher.stop()
        assert await outbox.part_report("modem:a", 1, True, time.time()) is not None
        rc = await command
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "part 1/1 mr=1" in out and "report mr=1: delivered" in out
    assert modem.calls == [(CALLER, "on our way")]
