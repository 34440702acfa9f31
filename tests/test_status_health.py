"""Telling the admin the truth (issue 12.9, issue 16.3/16.4/16.9).

``textback status`` is a health check in the monitoring-plugin convention (0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN; first line ``TEXTBACK <STATE> - <summary>``); it reads its own
store's status file, opens the store read-only (never migrates it), and a store it cannot
use is one line, never a traceback. ``textback run`` says the same of a store it cannot
open. The CLI runs as a subprocess here, as an admin or a monitoring agent runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.test_daemon_e2e import config_toml
from textback.config import Config, parse_config
from textback.daemon import Daemon, status_path
from textback.migrations import LATEST, MIGRATIONS
from textback.outbound import call_record, open_calls
from textback.pbx.outcome import CallOutcome
from textback.store import Store, StoreUnavailable


def write_config(tmp: Path, store: Path, *, name: str = "textback.toml",
                 ami_port: int = 5038) -> Path:
    config = tmp / name
    text = config_toml(ami_port=ami_port, modem_port="/dev/ttyUSB-none",
                         send_delay=0, store=store)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return config


def load(config: Path) -> Config:
    return parse_config(config.read_text(), config, check_permissions=False)


def textback(*args: str, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # a file-size limit: writes past it fail in the kernel, as on a
        # full disk (Python ignores SIGXFSZ, so the write returns an error)
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "textback", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, preexec_fn=limit,
                          env=dict(os.environ, TEXTBACK_CONFIG=""))


def make_store(path: Path) -> None:
    async def go() -> None:
        store = await Store.open(path)
        await store.close()
    asyncio.run(go())


def write_status(config: Path, *, at: float | None = None) -> Path:
    """The status file exactly as the daemon writes it (its own ``write_status``)."""
    async def go() -> None:
        daemon = Daemon(load(config), clock=(lambda: at) if at is not None else time.time)
        await daemon.write_status()
    asyncio.run(go())
    return status_path(load(config).store.path)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_status_without_a_status_file_is_critical(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    make_store(db)
    r = textback("status", "--config", str(write_config(tmp_path, db)))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.startswith("TEXTBACK CRITICAL - daemon not running"), r.stdout


def test_status_with_a_stale_status_file_is_critical(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    make_store(db)
    config = write_config(tmp_path, db)
    write_status(config, at=time.time() - 125)
    r = textback("status", "--config", str(config))
    assert r.returncode == 2, r.stdout + r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("TEXTBACK CRITICAL - daemon not running (status 2 min old"), first


def test_json_status_has_a_state_and_the_same_exit_code(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    make_store(db)
    r = textback("status", "--config", str(write_config(tmp_path, db)), "--json")
    assert r.returncode == 2
    data = json.loads(r.stdout)
    assert data["state"] == "CRITICAL" and "daemon not running" in data["summary"]


def test_two_stores_in_one_folder_have_separate_status_files(tmp_path: Path) -> None:
    a = write_config(tmp_path, tmp_path / "a.db", name="a.toml", ami_port=5038)
    b = write_config(tmp_path, tmp_path / "b.db", name="b.toml", ami_port=5039)
    make_store(tmp_path / "a.db")
    make_store(tmp_path / "b.db")
    file_a = write_status(a)
    assert file_a.parent == tmp_path and "a.db" in file_a.name
    assert status_path(tmp_path / "b.db") != file_a
    r = textback("status", "--config", str(b), "--json")
    data = json.loads(r.stdout)
    assert data["daemon"] is None, "b's status shows a's daemon"
    assert r.returncode == 2
    r = textback("status", "--config", str(a), "--json")
    assert json.loads(r.stdout)["daemon"]["pbx"]["port"] == 5038


def test_status_opens_an_old_store_read_only_and_never_migrates_it(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    with sqlite3.connect(db) as con:  # a store made by textback 1 (schema version 1)
        con.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    con.close()
    os.chmod(db, 0o640)
    past = time.time() - 3600
    os.utime(db, (past, past))
    before = db.stat()
    r = textback("status", "--config", str(write_config(tmp_path, db)))
    assert "Traceback" not in r.stderr, r.stderr
    after = db.stat()
    assert (after.st_mtime_ns, after.st_mode, after.st_size) == (
        before.st_mtime_ns, before.st_mode, before.st_size)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["textback.db", "textback.toml"]
    assert f"schema version 1, older than this textback ({LATEST})" in r.stdout
    assert r.returncode == 2  # no daemon either


def _one_clear_line(r: subprocess.CompletedProcess[str], *words: str) -> str:
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    # the config's own warnings (e.g. the lab's test_number_prefixes) are logged first
    out = [line for line in lines(r.stdout) + lines(r.stderr)
           if "event=config_warning" not in line]
    assert len(out) == 1, out
    for word in words:
        assert word in out[0], out[0]
    return out[0]


def test_a_store_from_a_newer_textback_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    with sqlite3.connect(db) as con:
        con.execute(f"PRAGMA user_version = {LATEST + 1}")
    con.close()
    config = str(write_config(tmp_path, db))
    line = _one_clear_line(textback("status", "--config", config), "newer than this textback")
    assert line.startswith("TEXTBACK CRITICAL - store: ")
    _one_clear_line(textback("run", "--config", config), str(db), "newer than this textback")


def test_a_corrupt_store_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    db.write_bytes(b"this is not sqlite at all\n" * 400)
    config = str(write_config(tmp_path, db))
    _one_clear_line(textback("status", "--config", config),
                    f"store: {db} is not a textback store or is corrupt")
    _one_clear_line(textback("run", "--config", config),
                    f"store: {db} is not a textback store or is corrupt")
    assert db.read_bytes() == b"this is not sqlite at all\n" * 400


def test_another_programs_database_is_one_line_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    with sqlite3.connect(db) as con:  # e.g. the wrong path in [store]
        con.execute("CREATE TABLE cdr (src TEXT, dst TEXT)")
    con.close()
    before = db.read_bytes()
    config = str(write_config(tmp_path, db))
    _one_clear_line(textback("run", "--config", config),
                    f"store: {db} is not a textback store or is corrupt")
    _one_clear_line(textback("status", "--config", config), "is not a textback store")
    assert db.read_bytes() == before


def test_a_full_disk_at_start_is_one_line(tmp_path: Path) -> None:
    # Simulated: a 16 KiB file-size limit (RLIMIT_FSIZE) on the daemon process; creating
    # the store's schema writes past it and the kernel refuses, as a full disk does.
    db = tmp_path / "textback.db"
    r = textback("run", "--config", str(write_config(tmp_path, db)), fsize=16 * 1024 + 100)
    line = _one_clear_line(r, "store:", str(db))
    assert line.startswith("textback run: store: ") and line.endswith("; not started")


async def test_status_during_a_store_outage_names_it_and_is_critical(tmp_path: Path) -> None:
    db = tmp_path / "textback.db"
    config = write_config(tmp_path, db)
    daemon = Daemon(load(config))
    store = await Store.open(db)
    daemon.store = store
    try:
        pages = await store.fetchone("PRAGMA page_count")
        assert pages is not None
        # SQLite's own "database or disk is full", from a page limit on this connection
        await store.connection.execute(f"PRAGMA max_page_count = {pages[0]}")
        big = CallOutcome("c-big", "inbound", "+15551230001", False, "+15559870000",
                          "missed", "noanswer", extra={"blob": "x" * 200_000})
        try:
            await call_record.record_outcome(store, big, time.time())
        except StoreUnavailable:
            pass
        else:
            raise AssertionError("the store was not full")
        await daemon.write_status()
        r = await asyncio.to_thread(textback, "status", "--config", str(config))
        assert r.returncode == 2, r.stdout
        first = r.stdout.splitlines()[0]
        assert first.startswith("TEXTBACK CRITICAL - store: disk full since "), first
        # space comes back: the next write succeeds and the status says so
        await store.connection.execute("PRAGMA max_page_count = 1000000")
        assert (await call_record.record_outcome(store, big, time.time())).new
        await daemon.write_status()
        r = await asyncio.to_thread(textback, "status", "--config", str(config), "--json")
        data: dict[str, Any] = json.loads(r.stdout)
        assert data["daemon"]["store"]["error"] is None
        assert "store" not in data["summary"]
    finally:
        await store.close()


# ---------------------------------------------------------------- the verdict itself

def live(now: float, **over: Any) -> dict[str, Any]:
    """A status file as ``Daemon.write_status`` writes it (fields this test needs)."""
    base: dict[str, Any] = {
        "pid": 1, "at": now - 2, "running": True,
        "store": {"path": "/var/lib/textback/textback.db", "error": None, "kind": None,
                  "since": None},
        "pbx": {"type": "asterisk", "host": "127.0.0.1", "port": 5038, "connected": True,
                "down_since": None},
        "senders": {"modem:a": True, "sip": True},
        "modems": {"modem:a": {"state": "ready", "error": None}},
        "outbox_queued": 0,
    }
    base.update(over)
    return base


def test_verdicts_follow_the_monitoring_plugin_convention() -> None:
    from textback.cli.status import assess

    now = 1_800_000_000.0
    code, line = assess({"daemon": live(now)}, now)
    assert (code, line.split(" - ")[0]) == (0, "TEXTBACK OK")
    assert "pbx up" in line and "senders 2/2 up" in line
    # one modem degraded, SIP still up: warning
    code, line = assess({"daemon": live(now, senders={"modem:a": False, "sip": True},
                                        modems={"modem:a": {"state": "no-device",
                                                            "error": "gone"}})}, now)
    assert code == 1 and line.startswith("TEXTBACK WARNING - ") and "modem:a" in line
    # nothing can send: critical
    code, line = assess({"daemon": live(now, senders={"modem:a": False, "sip": False})}, now)
    assert code == 2 and "no sender up" in line
    # PBX link down briefly: warning; for minutes: critical
    pbx = dict(live(now)["pbx"], connected=False, down_since=now - 20)
    assert assess({"daemon": live(now, pbx=pbx)}, now)[0] == 1
    pbx["down_since"] = now - 300
    code, line = assess({"daemon": live(now, pbx=pbx)}, now)
    assert code == 2 and "pbx asterisk 127.0.0.1:5038 link down for 5 min" in line
    # texts overdue in the outbox: warning
    code, line = assess({"daemon": live(now), "outbox_overdue": 3}, now)
    assert code == 1 and "outbox: 3 texts overdue" in line
    # a daemon that stopped cleanly wrote its last status on the way out
    code, line = assess({"daemon": live(now, running=False)}, now)
    assert code == 2 and "daemon not running (stopped" in line
    # the worst problem comes first
    store = {"path": "x", "error": "database or disk is full", "kind": "full",
             "since": now - 60}
    code, line = assess({"daemon": live(now, store=store, senders={"modem:a": False,
                                                                   "sip": True})}, now)
    assert code == 2 and line.startswith("TEXTBACK CRITICAL - store: disk full since ")
    assert "modem:a" in line


async def test_the_store_keeps_an_outage_until_a_real_write_ends_it(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    try:
        pages = await store.fetchone("PRAGMA page_count")
        assert pages is not None
        await store.connection.execute(f"PRAGMA max_page_count = {pages[0]}")
        big = CallOutcome("c-big", "inbound", "+15551230001", False, "+15559870000",
                          "missed", "noanswer", extra={"blob": "x" * 200_000})
        for _ in range(2):
            with contextlib.suppress(StoreUnavailable):
                await call_record.record_outcome(store, big, 1.0)
        assert store.unavailable is not None and store.unavailable.kind == "full"
        since = store.unavailable_since
        # a commit that changed nothing (another loop finding no work) proves nothing
        assert await open_calls.forget_open_call(store, "none") is False
        assert store.unavailable is not None and store.unavailable_since == since
        await store.connection.execute("PRAGMA max_page_count = 1000000")
        assert (await call_record.record_outcome(store, big, 2.0)).new
        assert store.unavailable is None and store.unavailable_since is None
    finally:
        await store.close()


def test_since_takes_a_date_like_report(tmp_path: Path) -> None:
    """Issue 16 item 13: ``status --since`` takes a date (or date and time) in the business's
    zone, as ``report --since`` does, not an epoch; a bad one is a clear error, exit 3."""
    store = tmp_path / "textback.db"

    async def one_call() -> None:
        s = await Store.open(store)
        try:
            await call_record.record_outcome(s, CallOutcome(
                "c1", "inbound", "+15551230001", False, "+15559870000", "missed",
                "noanswer", ended_at=1_800_000_000.0), 1_800_000_000.0)
        finally:
            await s.close()

    asyncio.run(one_call())
    config = write_config(tmp_path, store)
    old = json.loads(textback("status", "--config", str(config), "--json",
                              "--since", "2020-01-01").stdout)
    new = json.loads(textback("status", "--config", str(config), "--json",
                              "--since", "2999-01-01T09:00").stdout)
    assert "missed" in json.dumps(old["calls"]) and "missed" not in json.dumps(new["calls"])
    bad = textback("status", "--config", str(config), "--since", "1790000000")
    assert bad.returncode == 3 and "not a date" in bad.stderr and "Traceback" not in bad.stderr
