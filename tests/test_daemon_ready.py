"""READY and STATUS tell systemd the truth (issue 16.3).

READY=1 goes out once the store is open and the PBX link is logged in, not before; when the
link does not come up within ``[pbx] ready_timeout_s`` READY goes out anyway (systemd would
otherwise kill the service and texting from the modem would stop too) with a STATUS naming
what is missing. The heartbeat keeps STATUS current. The PBX is the replaying fake AMI
server serving a real Asterisk 22 capture; the modem is the simulator on a pty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tests.test_daemon_e2e import capture_events, config_toml, rig_for
from textback.config import parse_config
from textback.daemon import Daemon
from textback.sdnotify import Notifier


class RecordingNotifier(Notifier):
    """Stands in for systemd's notify socket; remembers what was sent and, for READY,
    whether the PBX link was logged in at that moment."""

    def __init__(self) -> None:
        super().__init__(address="")
        self.daemon: Daemon | None = None
        self.sent: list[dict[str, str | int]] = []
        self.ready_sent = asyncio.Event()
        self.logged_in_at_ready: bool | None = None
        self.new_status = asyncio.Event()

    def notify(self, **fields: str | int) -> bool:
        self.sent.append(fields)
        if "ready" in fields and self.daemon is not None:
            link = self.daemon.link
            self.logged_in_at_ready = bool(link and link.connected.is_set())
            self.ready_sent.set()
        if "status" in fields:
            self.new_status.set()
        return True

    def statuses(self) -> list[str]:
        return [str(f["status"]) for f in self.sent if "status" in f]


async def test_ready_only_after_the_ami_login(tmp_path: Path) -> None:
    async with rig_for(tmp_path, capture_events("direct-noanswer.ami.ts")) as rig:
        notifier = RecordingNotifier()
        daemon = Daemon(rig.config(), notifier=notifier, modem_poll_s=0.1)
        notifier.daemon = daemon
        rig.daemon, rig.task = daemon, asyncio.create_task(daemon.run())
        async with asyncio.timeout(10):
            await notifier.ready_sent.wait()
        assert notifier.logged_in_at_ready is True
        assert rig.ami.logins >= 1
        ready = next(f for f in notifier.sent if "ready" in f)
        assert "pbx up" in str(ready.get("status", ""))
        # the heartbeat keeps STATUS current: the modem comes up after READY
        async with asyncio.timeout(10):
            while not any("modems 1/1 ready" in s for s in notifier.statuses()):
                notifier.new_status.clear()
                await notifier.new_status.wait()
        assert any("pbx up" in s and "outbox 0" in s for s in notifier.statuses())
        # the status file (written just before that STATUS) has the modem's AT+CSQ reading,
        # which `textback status` and `textback modem probe` show
        import json

        from textback.daemon import status_path
        modem = json.loads(status_path(rig.db).read_text())["modems"]["modem:a"]
        assert modem["state"] == "ready" and modem["signal"] == 20  # the simulator's +CSQ
        assert await rig.stop() == 0


@contextlib.asynccontextmanager
async def mute_pbx() -> AsyncIterator[int]:
    """A TCP port that accepts and then says nothing (a PBX that never logs us in)."""
    conns: list[asyncio.StreamWriter] = []

    async def hold(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(w)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for w in conns:
            w.close()
        server.close()


async def test_ready_after_the_start_timeout_names_what_is_missing(tmp_path: Path) -> None:
    from textback.testing.modem_simulator import ModemSimulator

    sim = ModemSimulator("generic", link=tmp_path / "ttyUSB-ready", time_scale=0.0)
    await sim.start()
    try:
        async with mute_pbx() as port:
            text = config_toml(ami_port=port, modem_port=sim.port,
                                 send_delay=0, store=tmp_path / "textback.db")
            text = text.replace("[pbx]\n", "[pbx]\nready_timeout_s = 0.5\n", 1)
            config = parse_config(text, tmp_path / "textback.toml", check_permissions=False)
            assert config.pbx.ready_timeout_s == 0.5
            notifier = RecordingNotifier()
            daemon = Daemon(config, notifier=notifier, modem_poll_s=0.1)
            notifier.daemon = daemon
            task = asyncio.create_task(daemon.run())
            async with asyncio.timeout(10):
                await notifier.ready_sent.wait()
            assert notifier.logged_in_at_ready is False
            ready = next(f for f in notifier.sent if "ready" in f)
            status = str(ready["status"])
            assert f"pbx asterisk 127.0.0.1:{port} not logged in after 0.5 s" in status
            assert not task.done()  # still running: the modem side keeps working
            daemon.stop()
            async with asyncio.timeout(10):
                assert await task == 0
    finally:
        await sim.stop()


def test_ready_timeout_is_checked(tmp_path: Path) -> None:
    import pytest

    from textback.config import ConfigError

    text = config_toml(ami_port=5038, modem_port="/dev/ttyUSB0",
                         send_delay=0, store=tmp_path / "textback.db")
    config = parse_config(text, tmp_path / "t.toml", check_permissions=False)
    assert config.pbx.ready_timeout_s == 30.0
    with pytest.raises(ConfigError, match="ready_timeout_s"):
        parse_config(text.replace("[pbx]\n", "[pbx]\nready_timeout_s = -1\n", 1),
                     tmp_path / "t.toml", check_permissions=False)




async def test_a_store_outage_reaches_status_and_the_status_file(tmp_path: Path) -> None:
    """The running daemon during a full store: STATUS and `textback status` name it, and the
    call is texted once space is back. Simulated: "full" is SQLite's own "database or disk
    is full" from a page limit set on the daemon's connection (not a real full disk), and
    the call is handed to the pipeline as the tracker reports direct-noanswer.ami, with a
    large extra field so that recording it needs new pages."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.daemon_fakes import outcome
    from tests.test_daemon_e2e import modem_ready, until
    from textback.daemon import status_path

    async with rig_for(tmp_path, []) as rig:
        notifier = RecordingNotifier()
        daemon = Daemon(rig.config(), notifier=notifier, modem_poll_s=0.1, heartbeat_s=0.1)
        notifier.daemon = daemon
        rig.daemon, rig.task = daemon, asyncio.create_task(daemon.run())
        async with asyncio.timeout(10):
            await notifier.ready_sent.wait()
        await modem_ready(rig)
        store, pipeline = daemon.store, daemon.pipeline
        assert store is not None and pipeline is not None
        pages = await store.fetchone("PRAGMA page_count")
        assert pages is not None
        await store.connection.execute(f"PRAGMA max_page_count = {pages[0]}")
        import time
        pipeline.submit(outcome("outage-1", caller="+15551230099", ended_at=time.time(),
                                extra={"note": "x" * 200_000}))
        await until(lambda: store.unavailable is not None, what="a failed store write")
        await until(lambda: any("store: disk full since" in s for s in notifier.statuses()))
        await until(lambda: (json.loads(status_path(rig.db).read_text())["store"]["kind"]
                             == "full"))
        config = tmp_path / "textback.toml"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(config_toml(ami_port=5038, modem_port=rig.sim.port,
                                  send_delay=0, store=rig.db))
        r = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "textback", "status", "--config",
                             str(config)], capture_output=True, text=True, timeout=60,
            cwd=REPO)
        assert r.returncode == 2, r.stdout + r.stderr
        assert r.stdout.startswith("TEXTBACK CRITICAL - store: disk full since "), r.stdout
        # space is back: the held call is recorded and texted, and the outage is over
        await store.connection.execute("PRAGMA max_page_count = 1000000")
        await until(lambda: bool(rig.texted()), timeout=15)
        assert store.unavailable is None
        assert [n for n, _ in rig.texted()] == ["+15551230099"]
        assert await rig.stop() == 0


async def test_reload_tells_systemd_reloading_then_ready(tmp_path: Path) -> None:
    """A reload is framed by RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload wants)
    and READY=1, whether the file was applied or refused."""
    import os

    from textback.testing.lab_config import lab_config_toml

    async with rig_for(tmp_path, []) as rig:
        notifier = RecordingNotifier()
        config = rig.config()
        daemon = Daemon(config, notifier=notifier, modem_poll_s=0.1)
        notifier.daemon = daemon
        rig.daemon, rig.task = daemon, asyncio.create_task(daemon.run())
        async with asyncio.timeout(10):
            await notifier.ready_sent.wait()
        path = tmp_path / "textback.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(lab_config_toml(ami_port=config.pbx.port, modem_port=rig.sim.port,
                                    store=rig.db, policy={"caller_day_cap": 9}))
        for expected, text in ((True, None), (False, "[policy]\ncaller_day_cap = 0\n")):
            if text is not None:
                path.write_text(text)
            before = len(notifier.sent)
            assert await daemon.reload(path) is expected
            # (the heartbeat's WATCHDOG=1 and STATUS may come in between)
            reloading, ready = [f for f in notifier.sent[before:]
                                if "reloading" in f or "ready" in f]
            assert reloading["reloading"] == 1 and int(reloading["monotonic_usec"]) > 0
            assert ready["ready"] == 1
        assert daemon.config.policy.caller_day_cap == 9  # the refused file changed nothing
        assert daemon.pipeline is not None and daemon.pipeline.config is daemon.config
        assert await rig.stop() == 0
