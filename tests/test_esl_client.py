"""Live ESL client against a fake FreeSWITCH on 127.0.0.1 serving the real captures."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from tests.conftest import FREESWITCH_TRACES
from tests.daemon_fakes import pump_link
from textback.pbx.freeswitch.client import EslAuthError, EslClient, listen
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig
from textback.testing.fake_esl import FakeEslServer, Plan, capture_event_frames

CFG = TrackerConfig(settle_s=0.2)


def _expected(name: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in (FREESWITCH_TRACES / "expected.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["file"] == name:
            out[rec["call"]] = (rec["verdict"], rec["reason"])
    return out


async def _run_until(client: EslClient, cond, timeout: float = 8.0,
                     got: list[CallOutcome] | None = None, texts: list | None = None) -> None:
    task = asyncio.create_task(client.run())
    pump = asyncio.create_task(pump_link(client, got if got is not None else [], texts))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not cond():
            if task.done():
                task.result()
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.02)
    finally:
        client.stop()
        task.cancel()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, EslAuthError):
            await task


async def test_serves_capture_and_decides_every_call() -> None:
    frames = capture_event_frames((FREESWITCH_TRACES / "concurrent-mixed.esl").read_bytes())
    got: list[CallOutcome] = []
    async with FakeEslServer(frames) as srv:
        client = EslClient("127.0.0.1", srv.port, "ClueCon", CFG,
                           ping_timeout=3.0)
        await _run_until(client, lambda: len(got) >= 3, got=got)
        assert "event plain CHANNEL_CREATE CHANNEL_ANSWER CHANNEL_BRIDGE" in " ".join(srv.commands)
        assert "auth ***" in srv.commands  # the fake logs no secret either
    assert {o.call: (o.verdict, o.reason) for o in got} == _expected("concurrent-mixed.esl")


async def test_drop_then_silence_then_resume_loses_and_duplicates_nothing() -> None:
    frames = capture_event_frames((FREESWITCH_TRACES / "concurrent-mixed.esl").read_bytes())
    got: list[CallOutcome] = []
    plans = [Plan(count=40, after="drop"), Plan(count=40, after="silent"), Plan()]
    async with FakeEslServer(frames, plans=plans) as srv:
        client = EslClient("127.0.0.1", srv.port, "ClueCon", CFG,
                           ping_timeout=0.6, backoff_min=0.05)
        await _run_until(client, lambda: len(got) >= 3 and srv.done, timeout=10, got=got)
        await asyncio.sleep(0.3)
        assert srv.connections >= 3
        assert client.connections >= 3
    assert sorted(o.call for o in got) == sorted(_expected("concurrent-mixed.esl"))
    assert {o.call: (o.verdict, o.reason) for o in got} == _expected("concurrent-mixed.esl")


async def test_events_lost_while_away_are_resynchronised_once() -> None:
    """The whole end of direct-noanswer (both hangups) happens while we are disconnected:
    ``show channels`` tells the client the legs are gone; the call is decided once, from
    what was seen (the b-leg never answered)."""
    frames = capture_event_frames((FREESWITCH_TRACES / "direct-noanswer.esl").read_bytes())
    names = [f.split(b"Event-Name: ")[1].split(b"\n")[0] for f in frames]
    first_hangup = names.index(b"CHANNEL_HANGUP")
    got: list[CallOutcome] = []
    plans = [Plan(count=first_hangup, after="drop", skip=len(frames)), Plan()]
    async with FakeEslServer(frames, plans=plans) as srv:
        client = EslClient("127.0.0.1", srv.port, "ClueCon", CFG,
                           ping_timeout=2.0, backoff_min=0.05)
        await _run_until(client, lambda: len(got) >= 1 and client.connections >= 2, got=got)
        await asyncio.sleep(0.5)
    assert [o.call for o in got] == ["94ef8245-1c0b-4a3e-8e4d-e3f333514ddc"]
    assert got[0].verdict == "missed" and got[0].direction == "inbound"


async def test_auth_failure_is_one_clear_error_without_the_secret(capsys) -> None:
    async with FakeEslServer([], password="ClueCon") as srv:
        rc = await asyncio.wait_for(
            listen("127.0.0.1", srv.port, "WrongPassword", CFG, lambda o: None), 5)
    err = capsys.readouterr().err
    assert rc != 0
    assert f"127.0.0.1:{srv.port}" in err and "refused the password" in err
    assert "WrongPassword" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


async def test_api_and_bgapi() -> None:
    def handler(cmd: str) -> str | None:
        return "+OK 1234\n" if cmd.startswith("originate") else None

    async with FakeEslServer([], api_handler=handler) as srv:
        client = EslClient("127.0.0.1", srv.port, "ClueCon", CFG)
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(client.connected.wait(), 5)
        status = await client.api("status")
        assert "is ready" in status
        assert (await client.bgapi("originate user/101 &park()")).startswith("+OK 1234")
        assert (await client.api("nosuchcmd")).startswith("-ERR")
        client.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert any(c.startswith("bgapi originate") for c in srv.commands)


async def test_reconnects_with_backoff_until_the_pbx_is_back() -> None:
    srv = FakeEslServer([])
    port = await srv.start()
    await srv.close()
    client = EslClient("127.0.0.1", port, "ClueCon", CFG, backoff_min=0.05, backoff_max=0.2)
    task = asyncio.create_task(client.run())
    await asyncio.sleep(0.4)  # several refused connects
    assert not client.connected.is_set()
    srv2 = FakeEslServer([], port=port)
    await srv2.start()
    try:
        await asyncio.wait_for(client.connected.wait(), 3)
    finally:
        client.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await srv2.close()


async def test_our_own_chat_echo_is_not_a_text_received() -> None:
    """chat-send.esl is our own outgoing text coming back as a MESSAGE event (proto global,
    Delivery-Result-Code 202): the link must not report it as a customer's text."""
    frames = capture_event_frames((FREESWITCH_TRACES / "chat-send.esl").read_bytes())
    texts: list = []
    async with FakeEslServer(frames) as srv:
        client = EslClient("127.0.0.1", srv.port, "ClueCon", CFG)
        await _run_until(client, lambda: srv.done and client.stream.stats.events > 0,
                         texts=texts)
        assert any(b"Event-Name: MESSAGE" in f for f in frames)
    assert texts == []
