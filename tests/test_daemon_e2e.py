"""The daemon end to end, in-process: a replaying fake AMI server serving real Asterisk 22
captures, a simulated modem on a pty, a real store. What the simulated network accepted
(the PDUs decoded) is the truth about who was texted."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ASTERISK_TRACES, REPO
from tests.daemon_fakes import lab_gate
from textback import daemon as daemon_mod
from textback.config import default_policy, parse_config
from textback.daemon import Daemon
from textback.outbound import call_record
from textback.outbound.dispatcher import Dispatcher
from textback.outbound.outbox import Outbox
from textback.pbx.outcome import CallOutcome
from textback.store import Store
from textback.testing.fake_ami import FakeAmi, TimedMessage, load_ts_capture
from textback.testing.lab_config import lab_config_toml
from textback.testing.modem_simulator import ModemSimulator

SECRET = "e2e-secret-Hq4"
SPEED = 30.0

def config_toml(*, ami_port: int, modem_port: str, send_delay: float, store: Path) -> str:
    """The lab office on the replayed AMI, a SIP trunk beside the modem, three DIDs."""
    senders = ["modem:a", "sip"]
    return lab_config_toml(
        ami_port=ami_port, modem_port=modem_port, store=store,
        pbx={"secret": SECRET}, trunks={"settle_s": 0.2},
        sip={"destination": "pjsip:trunk/sip:{number}@127.0.0.1:5180"},
        policy={"send_delay_s": send_delay, "retry_base_s": 0.2, "retry_max_s": 0.5},
        did=[{"number": "+15559870000", "business": "Acme Plumbing", "senders": senders},
             {"number": "+15559870002", "business": "Acme Heating", "senders": senders},
             {"number": "+15559870003", "business": "Acme Electric", "senders": senders}])


def capture_events(*names: str) -> list[TimedMessage]:
    """The events of one or more real captures, one after the other (each capture's own
    timing kept, the next starting 0.5 s after the previous one ended)."""
    out: list[TimedMessage] = []
    offset = 0.0
    for name in names:
        msgs = [m for m in load_ts_capture(ASTERISK_TRACES / name)
                if not m.raw.startswith((b"Asterisk Call Manager/", b"Response: "))]
        t0 = msgs[0].at
        out += [TimedMessage(offset + m.at - t0, m.raw) for m in msgs]
        offset = out[-1].at + 0.5
    return out


@dataclass
class Rig:
    tmp: Path
    ami: FakeAmi
    sim: ModemSimulator
    send_delay: float = 0.0
    daemon: Daemon | None = None
    task: asyncio.Task[int] | None = None

    @property
    def db(self) -> Path:
        return self.tmp / "textback.db"

    def config(self) -> Any:
        assert self.ami._server is not None
        port = self.ami._server.sockets[0].getsockname()[1]
        text = config_toml(ami_port=port, modem_port=self.sim.port,
                           send_delay=self.send_delay, store=self.db)
        return parse_config(text, self.tmp / "textback.toml", check_permissions=False)

    async def start(self) -> Daemon:
        self.daemon = Daemon(self.config(), modem_poll_s=0.1)
        self.task = asyncio.create_task(self.daemon.run())
        return self.daemon

    async def stop(self) -> int:
        assert self.daemon is not None and self.task is not None
        self.daemon.stop()
        async with asyncio.timeout(10):
            status = await self.task
        self.daemon = self.task = None
        return status

    def texted(self) -> list[tuple[str | None, str]]:
        return [(a.decoded.number, a.decoded.text or "") for a in self.sim.accepted]

    def query(self, sql: str) -> list[dict[str, Any]]:
        if not self.db.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as con:
            con.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in con.execute(sql)]
            except sqlite3.Error:
                return []


async def until(check: Callable[[], Any], timeout: float = 8.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def modem_ready(rig: Rig) -> None:
    assert rig.daemon is not None
    await until(lambda: rig.daemon is not None and "modem:a" in rig.daemon.senders
                and rig.daemon.senders["modem:a"].available())


@contextlib.asynccontextmanager
async def rig_for(tmp: Path, events: list[TimedMessage], *, send_delay: float = 0.0
                  ) -> AsyncIterator[Rig]:
    ami = FakeAmi(events=events, speed=SPEED, secret=SECRET)
    await ami.start("127.0.0.1", 0)
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-e2e", time_scale=0.0)
    await sim.start()
    rig = Rig(tmp, ami, sim, send_delay)
    try:
        yield rig
    finally:
        if rig.daemon is not None:
            with contextlib.suppress(Exception):
                await rig.stop()
        await ami.close()
        await sim.stop()


def settled(rig: Rig, calls: int) -> bool:
    decided = rig.query("SELECT count(*) AS n FROM calls")
    busy = rig.query("SELECT count(*) AS n FROM outbox WHERE state IN ('queued','sending')")
    return bool(decided) and decided[0]["n"] >= calls and busy[0]["n"] == 0


async def test_concurrent_mixed_each_missed_caller_texted_once(tmp_path: Path) -> None:
    async with rig_for(tmp_path, capture_events("concurrent-mixed.ami.ts")) as rig:
        await rig.start()
        await until(lambda: rig.ami.finished.is_set() and settled(rig, 3))
        await asyncio.sleep(0.3)  # a second text, if any, would go now
        assert await rig.stop() == 0
        texted = rig.texted()
        assert sorted(n for n, _ in texted) == ["+15551230191", "+15551230193"]
        by_number = dict(texted)
        assert "Acme Plumbing" in by_number["+15551230191"]  # DID +15559870000
        assert "Acme Electric" in by_number["+15551230193"]  # DID +15559870003
        calls = {c["caller"]: c for c in rig.query("SELECT * FROM calls")}
        assert calls["+15551230192"]["verdict"] == "answered"
        assert calls["+15551230191"]["decision"] == "text"
        assert rig.ami.sent == []  # the modem took them all


async def test_answered_internal_outbound_never_texted(tmp_path: Path) -> None:
    events = capture_events("direct-answered.ami.ts", "internal-noanswer.ami.ts",
                            "outbound-noanswer.ami.ts")
    async with rig_for(tmp_path, events) as rig:
        await rig.start()
        await until(lambda: rig.ami.finished.is_set() and settled(rig, 3), timeout=10)
        await asyncio.sleep(0.3)
        await rig.stop()
        calls = rig.query("SELECT call_id, direction, verdict FROM calls ORDER BY id")
        assert [(c["direction"], c["verdict"]) for c in calls] == [
            ("inbound", "answered"), ("internal", "ignored"), ("outbound", "ignored")]
        assert rig.texted() == [] and rig.ami.sent == []
        assert rig.query("SELECT * FROM outbox") == []


async def test_restart_between_queue_and_send_texts_once(tmp_path: Path) -> None:
    async with rig_for(tmp_path, capture_events("direct-busy.ami.ts"), send_delay=1.5) as rig:
        await rig.start()
        await until(lambda: rig.query("SELECT state FROM outbox") == [{"state": "queued"}])
        assert await rig.stop() == 0  # SIGTERM before the row is due
        assert rig.texted() == []
        assert rig.query("SELECT state FROM outbox") == [{"state": "queued"}]
        await rig.start()  # a new daemon on the same store resumes the row
        await until(lambda: rig.query("SELECT state FROM outbox")
                    in ([{"state": "sent"}], [{"state": "delivered"}]))
        await asyncio.sleep(0.3)
        await rig.stop()
        assert [n for n, _ in rig.texted()] == ["+15551230002"]


async def test_crash_while_sending_is_unconfirmed_not_resent(tmp_path: Path) -> None:
    """The process died after the row was handed to the modem (the Ctrl-Z may have gone):
    the next start reports it unconfirmed and never sends it again."""
    store = await Store.open(tmp_path / "textback.db")
    outbox = Outbox(store, config=lab_gate())
    call = CallOutcome("1795395183.0", "inbound", "+15551230001", False, "+15559870000",
                       "missed", "noanswer", ring_s=20.0)
    await call_record.record_outcome(store, call, 1.0)
    await outbox.enqueue(call_id=call.call, kind="textback", number="+15551230001",
                         did="+15559870000", body="Sorry we missed your call",
                         senders=["modem:a", "sip"], not_before=1.0, now=1.0)
    claimed = await outbox.claim_next(2.0)
    assert claimed is not None
    await outbox.mark_handed(claimed.id, 2.5)
    await store.close()
    async with rig_for(tmp_path, []) as rig:
        await rig.start()
        await modem_ready(rig)
        await asyncio.sleep(0.3)
        await rig.stop()
        assert rig.query("SELECT state FROM outbox") == [{"state": "unconfirmed"}]
        assert rig.texted() == [] and rig.ami.sent == []


async def test_crash_before_the_modem_got_it_is_sent_once(tmp_path: Path) -> None:
    """The process died between claiming the row and the modem's Ctrl-Z: nothing reached
    the network, so the next start sends it, once."""
    store = await Store.open(tmp_path / "textback.db")
    outbox = Outbox(store, config=lab_gate())
    now = time.time()
    call = CallOutcome("1795395183.0", "inbound", "+15551230001", False, "+15559870000",
                       "missed", "noanswer", ring_s=20.0, ended_at=now)
    await call_record.record_outcome(store, call, now)
    await outbox.enqueue(call_id=call.call, kind="textback", number="+15551230001",
                         did="+15559870000", body="Sorry we missed your call",
                         senders=["modem:a", "sip"], not_before=now, now=now)
    assert await outbox.claim_next(now) is not None
    await store.close()
    async with rig_for(tmp_path, []) as rig:
        await rig.start()
        await until(lambda: rig.query("SELECT state FROM outbox")
                    in ([{"state": "sent"}], [{"state": "delivered"}]))
        await asyncio.sleep(0.3)
        await rig.stop()
        assert [n for n, _ in rig.texted()] == ["+15551230001"]


async def test_lost_modem_hands_its_queue_to_sip(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The modem is unplugged while a text waits out its send delay: once it has been away
    longer than the handover time, the text goes as MessageSend through the PBX."""
    # the daemon passes [policy] handover_after_s; force it short here
    monkeypatch.setattr(daemon_mod, "Dispatcher", lambda *a, **kw: Dispatcher(
        *a, **{**kw, "handover_after_s": 0.5}))
    async with rig_for(tmp_path, capture_events("direct-busy.ami.ts"), send_delay=1.0) as rig:
        await rig.start()
        await modem_ready(rig)
        await until(lambda: rig.query("SELECT state FROM outbox") == [{"state": "queued"}])
        rig.sim.disappear()
        await until(lambda: rig.query("SELECT state, sent_by FROM outbox")
                    == [{"state": "sent", "sent_by": "sip"}], timeout=8)
        await rig.stop()
        assert rig.texted() == []
        (sent,) = rig.ami.sent
        assert sent["Destination"] == "pjsip:trunk/sip:+15551230002@127.0.0.1:5180"
        body = base64.b64decode(sent["Base64Body"]).decode()
        assert "Acme Plumbing" in body and "STOP" in body
        msg = rig.query("SELECT status FROM messages WHERE direction = 'out'")
        assert msg == [{"status": "sent-unconfirmed"}]  # MessageSend proves nothing


async def test_stop_by_sms_opts_out_and_confirms(tmp_path: Path) -> None:
    async with rig_for(tmp_path, []) as rig:
        await rig.start()
        await modem_ready(rig)
        rig.sim.inject_sms("+15551230191", "STOP", direct=True)  # a real +CMT PDU
        await until(lambda: rig.query("SELECT opted_out FROM opt_outs") == [{"opted_out": 1}])
        await until(lambda: len(rig.texted()) == 1)
        await asyncio.sleep(0.2)
        await rig.stop()
        ((number, text),) = rig.texted()
        assert number == "+15551230191" and "unsubscribed" in text
        inbound = rig.query("SELECT number, body FROM messages WHERE direction = 'in'")
        assert inbound == [{"number": "+15551230191", "body": "STOP"}]


def textback(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textback", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO,
                          env=dict(os.environ, TEXTBACK_CONFIG=""))


def test_run_with_missing_config_exits_2_with_one_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    r = textback("run", "--config", str(missing))
    assert r.returncode == 2
    assert str(missing) in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "textback.db").exists()


def test_status_reads_a_store(tmp_path: Path) -> None:
    async def fill() -> None:
        store = await Store.open(tmp_path / "textback.db")
        import time
        now = time.time()
        await call_record.record_outcome(store, CallOutcome("c1", "inbound", "+15551230001", False,
                                               "+15559870000", "missed", "noanswer"), now)
        await call_record.record_skip(store, "c1", "cooldown", "texted 1 h ago", now,
                                      default_policy())
        await store.close()

    asyncio.run(fill())
    config = tmp_path / "textback.toml"
    text = config_toml(ami_port=5038, modem_port="/dev/ttyUSB0", send_delay=0,
                       store=tmp_path / "textback.db")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    r = textback("status", "--config", str(config), "--json")
    assert r.returncode == 2, r.stderr  # CRITICAL: the store is fine, but no daemon runs
    import json
    data = json.loads(r.stdout)
    assert "cooldown" in json.dumps(data)
    assert data["state"] == "CRITICAL" and data["daemon"] is None
