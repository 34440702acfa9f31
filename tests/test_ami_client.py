"""AmiClient against the replaying fake AMI server on 127.0.0.1 (real capture bytes)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging

import pytest

from tests.conftest import ASTERISK_TRACES
from tests.daemon_fakes import pump_link
from textback.pbx.asterisk.client import AmiClient, AmiError, encode_action, listen
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig
from textback.testing.fake_ami import FakeAmi, load_ts_capture

SECRET = "s3cr3t-do-not-print"
EXPECTED = {(e["call"], e["verdict"], e["reason"]) for e in map(
    json.loads, (ASTERISK_TRACES / "expected.jsonl").read_text().splitlines())
    if e["file"] == "concurrent-mixed.ami"}


def test_ts_capture_matches_raw_capture() -> None:
    msgs = load_ts_capture(ASTERISK_TRACES / "concurrent-mixed.ami.ts")
    assert b"".join(m.raw for m in msgs) == (ASTERISK_TRACES / "concurrent-mixed.ami").read_bytes()
    assert all(a.at <= b.at for a, b in itertools.pairwise(msgs))


def test_encode_action_refuses_header_injection() -> None:
    assert encode_action({"Action": "Ping"}) == b"Action: Ping\r\n\r\n"
    with pytest.raises(ValueError):
        encode_action({"Action": "MessageSend", "Body": "hi\r\nAction: Originate"})


async def _run_client(server: FakeAmi, **kw: float) -> tuple[list[CallOutcome], AmiClient]:
    host, port = await server.start()
    out: list[CallOutcome] = []
    client = AmiClient(host, port, "textback", SECRET, TrackerConfig(settle_s=0.2),
                       ping_timeout=kw.get("ping_timeout", 0.6), backoff_initial=0.05)
    task = asyncio.create_task(client.run())
    pump = asyncio.create_task(pump_link(client, out))
    try:
        await asyncio.wait_for(server.finished.wait(), 15)
        for _ in range(100):  # settle window + tick
            if len(out) >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        client.stop()
        await asyncio.wait_for(task, 5)
        pump.cancel()
        await server.close()
    return out, client


async def test_drop_then_half_open_reconnects_resyncs_no_lost_no_duplicate(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeAmi.from_capture(ASTERISK_TRACES / "concurrent-mixed.ami.ts", secret=SECRET,
                                  speed=15.0, drop_at=70, silent_at=140, lost_on_fault=4)
    out, _client = await _run_client(server)
    assert server.logins == 3  # first login, after the drop, after the half-open link
    assert {(o.call, o.verdict, o.reason) for o in out} == EXPECTED
    assert len(out) == 3  # nothing decided twice
    assert SECRET not in caplog.text


async def test_clean_run_at_recorded_pace() -> None:
    server = FakeAmi.from_capture(ASTERISK_TRACES / "concurrent-mixed.ami.ts", secret=SECRET,
                                  speed=20.0)
    out, client = await _run_client(server)
    assert {(o.call, o.verdict, o.reason) for o in out} == EXPECTED
    assert server.logins == 1 and client.stream.stats.dropped == {}


async def test_send_action_messagesend_like_the_capture() -> None:
    server = FakeAmi.from_capture(ASTERISK_TRACES / "direct-busy.ami.ts", secret=SECRET,
                                  speed=50.0)
    host, port = await server.start()
    client = AmiClient(host, port, "textback", SECRET, TrackerConfig(),
                       ping_timeout=2.0, backoff_initial=0.05)
    task = asyncio.create_task(client.run())
    try:
        ok = await client.send_action({
            "Action": "MessageSend", "Destination": "pjsip:trunk/sip:+15551230001@127.0.0.1",
            "From": "sip:+15559870000@127.0.0.1", "Body": "Désolé 😀 we missed your call"})
        bad = await client.send_action({"Action": "MessageSend",
                                        "Destination": "sip:+15551230001@127.0.0.1"})
    finally:
        client.stop()
        await asyncio.wait_for(task, 5)
        await server.close()
    assert ok["Response"] == "Success" and ok["Message"] == "Message successfully sent"
    assert bad["Response"] == "Error" and bad["Message"] == "Message technology not found."
    assert server.sent[0]["Body"] == "Désolé 😀 we missed your call"


async def test_send_action_when_never_connected_is_a_clear_error() -> None:
    client = AmiClient("127.0.0.1", 9, "textback", SECRET)
    with pytest.raises(AmiError, match="not connected"):
        await client.send_action({"Action": "Ping"}, timeout=0.05)


async def test_login_failure_one_clear_line_without_secret(
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = FakeAmi.from_capture(ASTERISK_TRACES / "direct-busy.ami.ts", secret="right")
    host, port = await server.start()
    try:
        rc = await asyncio.wait_for(
            listen(host, port, "textback", SECRET, TrackerConfig(), lambda o: None,
                   ping_timeout=2.0), 10)
    finally:
        await server.close()
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1 and "Authentication failed" in err
    assert f"{host}:{port}" in err and "'textback'" in err
    assert SECRET not in err and SECRET not in caplog.text


async def test_refused_connection_backs_off_and_stops() -> None:
    client = AmiClient("127.0.0.1", 1, "textback", SECRET, backoff_initial=0.01,
                       backoff_max=0.05, connect_timeout=0.5)
    task = asyncio.create_task(client.run())
    await asyncio.sleep(0.3)
    client.stop()
    await asyncio.wait_for(task, 2)
    assert client.reconnects >= 3 and client.sessions == 0
