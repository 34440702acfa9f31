"""Callback on reply: CALL makes the PBX ring staff first, then the customer, caller ID = the
DID; AMI Originate (async, result by OriginateResponse) and ESL bgapi originate, each through
its adapter's ``originate`` (the real AmiClient / EslClient, their wire actions replaced by
recorders); the result is recorded and a placed callback stops follow-ups."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.daemon_fakes import CALLER, DID, NOW, Clock, lab_gate, make_config, opened
from textback.config import Config
from textback.inbound.callback import Callbacks, resolve_lost_callbacks, wants_callback
from textback.inbound.handler import InboundHandler
from textback.outbound.outbox import Outbox
from textback.pbx.asterisk.client import AmiClient
from textback.pbx.freeswitch.client import EslClient

RING = "Local/600@from-internal"


def ami_link(send_action: Any) -> AmiClient:
    """The Asterisk adapter, its AMI actions answered by ``send_action`` (no socket)."""
    client = AmiClient("127.0.0.1", 5038, "textback", "x")
    client.send_action = send_action  # type: ignore[method-assign]
    return client


def ami_event(client: AmiClient, raw: bytes) -> None:
    """Bytes from the PBX, as the client's reader hands them to its stream."""
    client.stream.receive_data(raw, NOW)
    client._drain()


def originate_response(action_id: str, response: str, reason: str) -> bytes:
    """The event as Asterisk writes it (manager.c, OriginateResponse)."""
    return (f"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: "
            f"{action_id}\r\nResponse: {response}\r\nChannel: {RING}-00000001;1\r\n"
            f"Context: from-internal\r\nExten: {CALLER}\r\nReason: {reason}\r\n"
            "Uniqueid: 1700000000.42\r\nCallerIDNum: +15559870000\r\n"
            "CallerIDName: Acme Plumbing\r\n\r\n").encode()


async def until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def with_ring(config: Config, ring: str | None = RING) -> Config:
    did = config.dids[0]
    staff = type(did.staff)(did.staff.sms, did.staff.email, ring, None)
    new_did = type(did)(**{**{f: getattr(did, f) for f in did.__dataclass_fields__},
                           "staff": staff})
    return type(config)(**{**{f: getattr(config, f) for f in config.__dataclass_fields__},
                           "dids": (new_did,)})


def test_callback_words() -> None:
    words = ("call", "call me", "call me back")
    for text in ("CALL", "call me!", " Call me back 📞 ", "\u200bcall"):
        assert wants_callback(text, words), text
    for text in ("call me tomorrow after 5", "don't call", "callback?", "", "recall"):
        assert not wants_callback(text, words), text


async def test_ami_originate_rings_staff_then_customer_and_records_answer(
        tmp_path: Path) -> None:
    actions: list[dict[str, str]] = []

    async def send_action(action: dict[str, str]) -> dict[str, str]:
        actions.append(action)
        return {"Response": "Success", "Message": "Originate successfully queued"}

    config = with_ring(make_config(tmp_path))
    async with opened(tmp_path) as store:
        link = ami_link(send_action)
        cbs = Callbacks(store, link, clock=Clock())
        inbound = InboundHandler(store, Outbox(store, config=config), config, clock=Clock(),
                                 callbacks=cbs)
        await inbound.receive(number=CALLER, text="CALL", did=DID, via="modem:a", at=NOW)
        await until(lambda: actions)
        (action,) = actions
        assert action["Action"] == "Originate" and action["Async"] == "true"
        assert action["Channel"] == RING  # staff first
        assert (action["Context"], action["Exten"], action["Priority"]) == (
            "from-internal", CALLER, "1")  # then the customer
        assert action["CallerID"] == f"\"Acme Plumbing\" <{DID}>"
        (row,) = await store.fetchall("SELECT * FROM callbacks")
        assert (row["state"], row["number"]) == ("requested", CALLER)
        ami_event(link, originate_response(action["ActionID"], "Success", "4"))
        result = await cbs.wait(row["id"], 2)
        assert result is not None and result.state == "answered"
        (row,) = await store.fetchall("SELECT * FROM callbacks")
        assert row["state"] == "answered" and "reason 4" in row["detail"]
        assert row["ref"] == action["ActionID"]
        # staff were told too, with the note
        fwd = await store.fetchone("SELECT body FROM outbox WHERE kind = 'staff-forward'")
        assert fwd is not None and "ringing staff now" in fwd["body"]


async def test_ami_originate_not_answered_is_recorded_failed(tmp_path: Path) -> None:
    sent: list[dict[str, str]] = []

    async def send_action(action: dict[str, str]) -> dict[str, str]:
        sent.append(action)
        return {"Response": "Success"}

    config = with_ring(make_config(tmp_path))
    async with opened(tmp_path) as store:
        link = ami_link(send_action)
        cbs = Callbacks(store, link, clock=Clock())
        first = await cbs.request(CALLER, config.dids[0], None, NOW)
        await until(lambda: sent)
        ami_event(link, originate_response("someone-else", "Failure", "0"))
        ami_event(link, originate_response(f"textback-callback-{first.callback_id}",
                                           "Failure", "3"))
        result = await cbs.wait(first.callback_id, 2)
        assert result is not None and result.state == "failed"
        assert "ring-timeout" in result.detail


async def test_esl_bgapi_originate(tmp_path: Path) -> None:
    cmds: list[str] = []
    answer = asyncio.Queue[str]()

    async def bgapi(cmd: str, timeout: float) -> str:
        cmds.append(cmd)
        return await answer.get()

    config = with_ring(make_config(tmp_path), "group/sales@pbx.example")
    async with opened(tmp_path) as store:
        link = EslClient("127.0.0.1", 8021, "ClueCon")
        link.bgapi = bgapi  # type: ignore[method-assign]
        cbs = Callbacks(store, link, clock=Clock())
        first = await cbs.request(CALLER, config.dids[0], None, NOW)
        await answer.put("+OK 7f4de4bc-17d7-11dd-b7a0-db4edd065621\n")
        ok = await cbs.wait(first.callback_id, 2)
        second = await cbs.request(CALLER, config.dids[0], None, NOW + 60)
        await answer.put("-ERR NO_ANSWER\n")
        bad = await cbs.wait(second.callback_id, 2)
        assert ok is not None and ok.state == "answered"
        assert bad is not None and (bad.state, bad.detail) == ("failed", "NO_ANSWER")
        assert cmds[0].startswith("originate {origination_caller_id_number=+15559870000,")
        assert f"}}group/sales@pbx.example {CALLER} XML default Acme_Plumbing " \
            f"+15559870000 30" in cmds[0]
        refs = [r["ref"] for r in await store.fetchall("SELECT ref FROM callbacks ORDER BY id")]
        assert refs[0] == "7f4de4bc-17d7-11dd-b7a0-db4edd065621"


async def test_no_ring_target_means_call_is_an_ordinary_reply(tmp_path: Path) -> None:
    sent: list[Any] = []

    async def send_action(action: dict[str, str]) -> dict[str, str]:
        sent.append(action)
        return {"Response": "Success"}

    config = make_config(tmp_path)  # staff.ring unset
    async with opened(tmp_path) as store:
        cbs = Callbacks(store, ami_link(send_action), clock=Clock())
        inbound = InboundHandler(store, Outbox(store, config=config), config, clock=Clock(),
                                 callbacks=cbs)
        await inbound.receive(number=CALLER, text="call me", did=DID, via="modem:a", at=NOW)
        assert sent == [] and await store.fetchall("SELECT * FROM callbacks") == []
        fwd = await store.fetchone("SELECT body FROM outbox WHERE kind = 'staff-forward'")
        assert fwd is not None and fwd["body"].startswith("Reply from +1 555-123-0001")


async def test_unsafe_ring_target_is_refused(tmp_path: Path) -> None:
    async def send_action(action: dict[str, str]) -> dict[str, str]:
        raise AssertionError("must not be sent")

    config = with_ring(make_config(tmp_path), "Local/600@x\r\nAction: Command")
    async with opened(tmp_path) as store:
        cbs = Callbacks(store, ami_link(send_action), clock=Clock())
        result = await cbs.request(CALLER, config.dids[0], None, NOW)
        assert result.state == "failed" and "unsafe" in result.detail


async def test_a_callback_pending_at_a_restart_is_resolved_and_staff_told_once(
        tmp_path: Path) -> None:
    """The OriginateResponse (or BACKGROUND_JOB) only reaches the connection that asked:
    after a restart a ``requested`` row would wait forever. At start it becomes
    ``unknown``, is never placed again, and staff get one SMS to call the customer; running
    the sweep again (a crash right after it) sends nothing twice."""
    async def send_action(action: dict[str, str]) -> dict[str, str]:
        return {"Response": "Success", "Message": "Originate successfully queued"}

    config = with_ring(make_config(tmp_path))
    async with opened(tmp_path) as store:
        cbs = Callbacks(store, ami_link(send_action), clock=Clock())
        await cbs.request(CALLER, config.dids[0], None, NOW)
        (row,) = await store.fetchall("SELECT * FROM callbacks")
        assert row["state"] == "requested"
    # the daemon restarts: a new process, a new Callbacks, the answer is gone
    async with opened(tmp_path) as store:
        outbox = Outbox(store, config=lab_gate())
        assert await resolve_lost_callbacks(store, outbox, config, NOW + 60) == 1
        assert await resolve_lost_callbacks(store, outbox, config, NOW + 61) == 0
        (row,) = await store.fetchall("SELECT * FROM callbacks")
        assert row["state"] == "unknown" and "restarted" in row["detail"]
        alerts = await store.fetchall("SELECT number, body FROM outbox WHERE kind LIKE "
                                      "'callback-unknown:%'")
        staff = config.dids[0].staff.sms
        assert sorted(a["number"] for a in alerts) == sorted(staff) and staff
        assert all("+1 555-123-0001" in a["body"] and "Please call them" in a["body"]
                   for a in alerts)
        # a callback asked after this start is not touched
        cbs = Callbacks(store, ami_link(send_action), clock=Clock(NOW + 70))
        await cbs.request(CALLER, config.dids[0], None, NOW + 70)
        assert await resolve_lost_callbacks(store, outbox, config, NOW + 65) == 0
