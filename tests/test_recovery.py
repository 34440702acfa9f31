"""No call lost to our own downtime (issue 13 part 3), end to end in-process: a fake AMI
server, a simulated modem on a pty, a real store, and the PBX's own CEL file.

The CEL rows are REAL: each recovered call is a copy of a capture's ``Event: CEL`` messages
(every shared capture was recorded with CEL on; tests/test_cel_backfill.py explains why
those are the rows cel_sqlite3_custom / cel_custom write), renumbered with fresh
Uniqueid/Linkedid, a fresh caller, and moved in time to end shortly before now, written in
the shipped columns with Asterisk's default ``<seconds>.<microseconds>`` eventtime.

What the daemon must do with them: decide every call that ended while it was away like a
live one, text a missed one that ended less than ``[policy] stale_after_min`` ago exactly
once (also across a second login), record an older one without texting it, mark them
recovered in the store and the report; and a source it cannot read is one WARNING line,
with the daemon running on and texting live calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ASTERISK_TRACES, FREESWITCH_TRACES
from tests.test_cel_backfill import cel_rows
from tests.test_daemon_e2e import SECRET, SPEED, Rig, capture_events, until
from textback.config import parse_config
from textback.outbound import call_record
from textback.pbx.asterisk import cel
from textback.pbx.asterisk.cel import COLUMNS, parse_eventtime
from textback.pbx.outcome import CallOutcome
from textback.report import build_report
from textback.store import Store
from textback.testing.fake_ami import FakeAmi, TimedMessage
from textback.testing.lab_config import lab_config_toml
from textback.testing.modem_simulator import ModemSimulator

DID = "+15559870000"
STALE_MIN = 60.0


def cel_call(capture: str, *, uid_base: int, caller: str, ended_at: float
             ) -> list[dict[str, str]]:
    """One real call's CEL rows, renumbered (Uniqueid/Linkedid ``<uid_base>.<n>``), its
    caller replaced, and shifted in time so its LINKEDID_END is at ``ended_at``."""
    rows = cel_rows(ASTERISK_TRACES / capture)
    first = next(r for r in rows if r["eventtype"] == "CHAN_START"
                 and r["uniqueid"] == r["linkedid"])
    old_caller = first["cid_num"]
    times = [parse_eventtime(r["eventtime"]) for r in rows]
    shift = ended_at - max(times)
    ids: dict[str, str] = {}
    out = []
    for r, t in zip(rows, times, strict=True):
        row = dict(r)
        for key in ("uniqueid", "linkedid"):
            row[key] = ids.setdefault(r[key], f"{uid_base}.{len(ids)}")
        row["eventtime"] = f"{t + shift:.6f}"
        for key in ("cid_num", "cid_ani"):
            if row[key] == old_caller:
                row[key] = caller
        out.append(row)
    return out


def write_cel(db: Path, rows: list[dict[str, str]]) -> None:
    """Append rows to cel_sqlite3_custom's table (created as the module creates it)."""
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.execute(f"CREATE TABLE IF NOT EXISTS cel (AcctId INTEGER PRIMARY KEY, "
                    f"{', '.join(COLUMNS)})")
        con.executemany(f"INSERT INTO cel ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(COLUMNS))})",
                        [[r[c] for c in COLUMNS] for r in rows])


class RecoveryRig(Rig):
    """The e2e rig with ``[pbx] records`` set and the stale limit stated."""

    records: Path

    def config(self) -> Any:
        assert self.ami._server is not None
        port = self.ami._server.sockets[0].getsockname()[1]
        text = lab_config_toml(ami_port=port, modem_port=self.sim.port, store=self.db,
                               pbx={"secret": SECRET, "records": str(self.records)},
                               trunks={"settle_s": 0.2},
                               policy={"send_delay_s": 0, "stale_after_min": STALE_MIN})
        return parse_config(text, self.tmp / "textback.toml", check_permissions=False)


@contextlib.asynccontextmanager
async def rig_for(tmp: Path, records: Path, events: list[TimedMessage] | None = None
                  ) -> AsyncIterator[RecoveryRig]:
    ami = FakeAmi(events=events or [], speed=SPEED, secret=SECRET)
    await ami.start("127.0.0.1", 0)
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-recovery", time_scale=0.0)
    await sim.start()
    rig = RecoveryRig(tmp, ami, sim)
    rig.records = records
    try:
        yield rig
    finally:
        if rig.daemon is not None:
            with contextlib.suppress(Exception):
                await rig.stop()
        await ami.close()
        await sim.stop()


def settled(rig: Rig, calls: int) -> bool:
    decided = rig.query("SELECT count(*) AS n FROM calls WHERE decision IS NOT NULL "
                        "OR verdict != 'missed'")
    busy = rig.query("SELECT count(*) AS n FROM outbox WHERE state IN ('queued','sending')")
    return bool(decided) and decided[0]["n"] >= calls and busy[0]["n"] == 0


async def seed_last_call(db: Path, ended_at: float) -> None:
    """The daemon's last decided call before it went down (where recovery starts from)."""
    store = await Store.open(db)
    try:
        await call_record.record_outcome(store, CallOutcome(
            "1000000000.0", "inbound", "+15551239000", False, DID, "answered", "answered",
            ended_at=ended_at), ended_at)
    finally:
        await store.close()


async def test_calls_that_ended_while_down_are_recovered_texted_once_and_reported(
        tmp_path: Path) -> None:
    now = time.time()
    db = tmp_path / "master.db"
    down_at = now - 3 * 3600.0  # the daemon died 3 hours ago
    await seed_last_call(tmp_path / "textback.db", down_at)
    fresh, stale, answered, later = ("+15551239001", "+15551239002", "+15551239003",
                                     "+15551239004")
    write_cel(db, [
        # ended 2 h ago: older than stale_after_min, recorded but never texted
        *cel_call("direct-noanswer.ami", uid_base=1900000001, caller=stale,
                  ended_at=now - 2 * 3600.0),
        # answered 10 min ago: recorded, no text
        *cel_call("direct-answered.ami", uid_base=1900000002, caller=answered,
                  ended_at=now - 600.0),
        # missed 1 min ago: texted, once
        *cel_call("direct-noanswer.ami", uid_base=1900000003, caller=fresh,
                  ended_at=now - 60.0),
    ])
    async with rig_for(tmp_path, db) as rig:
        await rig.start()
        await until(lambda: settled(rig, 4), timeout=15)
        await until(lambda: len(rig.texted()) >= 1)
        await asyncio.sleep(0.3)  # a second text, if any, would go now
        assert await rig.stop() == 0
        assert [n for n, _ in rig.texted()] == [fresh]
        calls = {c["caller"]: c for c in rig.query(
            "SELECT caller, verdict, reason, decision, skip_reason, "
            "json_extract(record, '$.recovered') AS recovered FROM calls")}
        assert (calls[fresh]["verdict"], calls[fresh]["reason"], calls[fresh]["decision"],
                calls[fresh]["recovered"]) == ("missed", "noanswer", "text", "cel")
        assert (calls[stale]["verdict"], calls[stale]["decision"],
                calls[stale]["skip_reason"], calls[stale]["recovered"]) == (
            "missed", "skip", "stale", "cel")
        assert (calls[answered]["verdict"], calls[answered]["recovered"]) == (
            "answered", "cel")
        assert calls["+15551239000"]["recovered"] is None  # decided live, before the crash

        # a second login (a restart) reads the same records again: nothing twice; a call
        # that ended meanwhile is recovered and texted
        write_cel(db, cel_call("direct-busy.ami", uid_base=1900000004, caller=later,
                               ended_at=time.time() - 5.0))
        await rig.start()
        await until(lambda: settled(rig, 5), timeout=15)
        await until(lambda: len(rig.texted()) >= 2)
        await asyncio.sleep(0.3)
        assert await rig.stop() == 0
        assert [n for n, _ in rig.texted()] == [fresh, later]
        assert rig.query("SELECT count(*) AS n FROM calls") == [{"n": 5}]
        assert rig.query("SELECT count(*) AS n FROM outbox") == [{"n": 2}]

    store = await Store.open(tmp_path / "textback.db")
    try:
        rows = {(r.did, r.reason): r.as_dict() for r in await build_report(store)}
    finally:
        await store.close()
    # the report counts missed calls: fresh and stale (noanswer), later (busy)
    assert rows[(DID, "all")]["missed"] == 3 and rows[(DID, "all")]["recovered"] == 3
    assert rows[(DID, "noanswer")]["recovered"] == 2 and rows[(DID, "busy")]["recovered"] == 1


@pytest.mark.parametrize("problem", ["missing", "locked", "unknown-columns"])
async def test_unreadable_records_are_one_warning_and_live_calls_still_texted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, problem: str) -> None:
    db = tmp_path / "master.db"
    holder = None
    if problem == "locked":
        write_cel(db, cel_call("direct-noanswer.ami", uid_base=1900000005,
                               caller="+15551239005", ended_at=time.time() - 30.0))
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
    elif problem == "unknown-columns":
        with contextlib.closing(sqlite3.connect(db)) as con, con:
            con.execute("CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, eventtype, "
                        "eventtime, cidnum, channame)")
    caplog.set_level(logging.INFO, logger="textback")
    try:
        async with rig_for(tmp_path, db, capture_events("direct-noanswer.ami.ts")) as rig:
            await rig.start()
            await until(lambda: rig.ami.finished.is_set() and settled(rig, 1), timeout=15)
            await until(lambda: len(rig.texted()) >= 1)
            await asyncio.sleep(0.3)
            assert await rig.stop() == 0
            assert [n for n, _ in rig.texted()] == ["+15551230001"]  # the live call
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    warnings = [r for r in caplog.records if "event=recovery_unavailable" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert {"missing": "does not exist", "locked": "locked",
            "unknown-columns": "lacks the column"}[problem] in warnings[0].getMessage()
    assert not any("event=call_recovered" in r.getMessage() for r in caplog.records)


def _after_unknown(db: Path) -> Any:
    """``read_cel_sqlite`` that first waits (in its worker thread) until the resync's
    ``unknown-after-restart`` verdict is in the store."""
    real = cel.read_cel_sqlite

    def read(path: Path, *, since: float, table: str = "cel") -> Any:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                if con.execute("SELECT 1 FROM calls WHERE reason = 'unknown-after-restart'"
                               ).fetchone():
                    break
            time.sleep(0.02)
        return real(path, since=since, table=table)
    return read


def shifted(capture: str, ended_at: float) -> list[dict[str, str]]:
    """A capture's CEL rows as they are (same ids and caller), moved to end at ``ended_at``."""
    rows = cel_rows(ASTERISK_TRACES / capture)
    times = [parse_eventtime(r["eventtime"]) for r in rows]
    shift = ended_at - max(times)
    return [dict(r, eventtime=f"{t + shift:.6f}") for r, t in zip(rows, times, strict=True)]


@pytest.mark.parametrize("first", ["records", "resync"])
async def test_killed_while_ringing_and_restarted_after_it_ended_is_texted_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str) -> None:
    """The issue's case: daemon 1 saw the call ring (its start is kept in the store) and
    died; the caller gave up while it was down. Daemon 2's resync finds the channels gone
    with no sign of how the call ended (``unknown-after-restart``), but the PBX's CEL knows:
    the caller was missed, and is texted, once — whichever of the two arrives first."""
    events = capture_events("direct-noanswer.ami.ts")
    ringing = next(i for i, m in enumerate(events) if b"Event: DialEnd\r\n" in m.raw)
    db = tmp_path / "master.db"
    async with rig_for(tmp_path, db, events[:ringing]) as rig:
        await rig.start()
        await until(lambda: rig.ami.finished.is_set()
                    and rig.query("SELECT call_id FROM open_calls")
                    == [{"call_id": "1795395183.0"}], timeout=15)
        assert await rig.stop() == 0  # down while it rings
        # the call ends while textback is down: the rest of its events reach nobody; the
        # PBX writes its CEL (the real capture's rows, ids and caller unchanged)
        write_cel(db, shifted("direct-noanswer.ami", time.time() - 20.0))
        if first == "resync":  # the records are read only once the resync has decided
            monkeypatch.setattr(cel, "read_cel_sqlite", _after_unknown(rig.db))
        await rig.ami.close()
        rig.ami = FakeAmi(events=[], speed=SPEED, secret=SECRET)  # same PBX, channels gone
        await rig.ami.start("127.0.0.1", 0)
        await rig.start()
        await until(lambda: rig.query("SELECT decision FROM calls") == [{"decision": "text"}]
                    and settled(rig, 1), timeout=15)
        await until(lambda: len(rig.texted()) >= 1)
        await asyncio.sleep(0.3)
        assert await rig.stop() == 0
        assert [n for n, _ in rig.texted()] == ["+15551230001"]
        (call,) = rig.query("SELECT call_id, verdict, reason, "
                            "json_extract(record, '$.recovered') AS recovered FROM calls")
        assert call == {"call_id": "1795395183.0", "verdict": "missed", "reason": "noanswer",
                        "recovered": "cel"}


async def test_only_a_recovered_verdict_replaces_unknown_after_restart(tmp_path: Path) -> None:
    from textback.pbx.outcome import UNKNOWN_AFTER_RESTART

    def call(cid: str, verdict: str, reason: str, recovered: bool) -> CallOutcome:
        o = CallOutcome(cid, "inbound", "+15551239010", False, DID, verdict,  # type: ignore[arg-type]
                        reason, ended_at=1.0)
        if recovered:
            o.extra["recovered"] = "cel"
        return o

    store = await Store.open(tmp_path / "textback.db")
    try:
        assert (await call_record.record_outcome(
            store, call("u", "ignored", UNKNOWN_AFTER_RESTART, False), 1.0)).new
        # a live (not recovered) verdict does not: first verdict stands, as always
        assert not (await call_record.record_outcome(
            store, call("u", "missed", "noanswer", False), 2.0)).new
        got = await call_record.record_outcome(store, call("u", "missed", "noanswer", True), 3.0)
        assert got.new and got.stored_verdict == "missed"
        row = await call_record.call(store, "u")
        assert row is not None and (row["verdict"], row["reason"], row["decided_at"]) == (
            "missed", "noanswer", 3.0)
        # once replaced, it is a verdict like any other: a second recovery changes nothing
        assert not (await call_record.record_outcome(
            store, call("u", "answered", "answered", True), 4.0)).new
        # a known verdict is never replaced by the records
        assert (await call_record.record_outcome(
            store, call("k", "answered", "answered", False), 5.0)).new
        assert not (await call_record.record_outcome(
            store, call("k", "missed", "noanswer", True), 6.0)).new
    finally:
        await store.close()


async def test_recovery_reaches_back_to_when_the_previous_process_was_last_alive(
        tmp_path: Path) -> None:
    """The previous process's last heartbeat (its status file) was 40 minutes ago and it
    decided no call before dying: a caller missed 30 minutes ago is recovered and texted;
    a call from before it died (it would have seen that one live) is not read."""
    import json

    from textback.daemon import status_path
    now = time.time()
    status_path(tmp_path / "textback.db").write_text(json.dumps(
        {"at": now - 2400.0, "pbx": {"connected": True, "down_since": None}}))
    db = tmp_path / "master.db"
    write_cel(db, [
        *cel_call("direct-noanswer.ami", uid_base=1900000010, caller="+15551239020",
                  ended_at=now - 3000.0),
        *cel_call("direct-noanswer.ami", uid_base=1900000011, caller="+15551239021",
                  ended_at=now - 1800.0),
    ])
    async with rig_for(tmp_path, db) as rig:
        await rig.start()
        await until(lambda: settled(rig, 1) and len(rig.texted()) >= 1, timeout=15)
        await asyncio.sleep(0.3)
        assert await rig.stop() == 0
        assert [n for n, _ in rig.texted()] == ["+15551239021"]
        assert rig.query("SELECT caller FROM calls") == [{"caller": "+15551239021"}]


# -- FreeSWITCH: the CDR and the fake Event Socket ---------------------------------------------

def cdr_call(capture: str, *, tag: str, caller: str, ended_at: float) -> list[dict[str, str]]:
    """One real call's CDR rows (tests/test_cdr_backfill.py derives them from the capture's
    CHANNEL_HANGUP_COMPLETE events), with fresh uuids (``<tag>-<n>``), its caller replaced
    and moved in time to end at ``ended_at``."""
    from tests.test_cdr_backfill import cdr_rows
    rows = cdr_rows(FREESWITCH_TRACES / capture)
    a_leg = next(r for r in rows if not r["originator"])
    shift = int(ended_at * 1e6) - max(int(r["end_uepoch"]) for r in rows)
    ids: dict[str, str] = {}
    out = []
    for r in rows:
        row = dict(r)
        for key in ("uuid", "originator"):
            if row[key]:
                row[key] = ids.setdefault(r[key], f"{tag}-{len(ids)}")
        for key in ("start_uepoch", "answer_uepoch", "bridge_uepoch", "end_uepoch"):
            if row[key] not in ("", "0"):
                row[key] = str(int(row[key]) + shift)
        if row["caller_id_number"] == a_leg["caller_id_number"]:
            row["caller_id_number"] = caller
        out.append(row)
    return out


def write_cdr_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """Append rows as mod_cdr_csv writes them with the shipped template (all quoted)."""
    from textback.pbx.freeswitch.cdr import COLUMNS as CDR_COLUMNS
    with path.open("a", encoding="utf-8") as f:
        for r in rows:
            f.write(",".join(f'"{r[c]}"' for c in CDR_COLUMNS) + "\n")


async def test_freeswitch_calls_ended_while_away_are_recovered_from_the_cdr(
        tmp_path: Path) -> None:
    from textback.testing.fake_esl import FakeEslServer, Plan
    now = time.time()
    cdr = tmp_path / "Master.csv"
    busy, answered, stale = "+15551239031", "+15551239032", "+15551239033"
    write_cdr_csv(cdr, [
        *cdr_call("direct-busy.esl", tag="busy", caller=busy, ended_at=now - 30.0),
        *cdr_call("direct-answered.esl", tag="answered", caller=answered,
                  ended_at=now - 20.0),
        *cdr_call("direct-noanswer.esl", tag="stale", caller=stale, ended_at=now - 7200.0),
    ])
    # the previous process was last alive 3 hours ago
    await seed_last_call(tmp_path / "textback.db", now - 3 * 3600.0)
    # the link logs in, drops at once, and logs in again: recovery runs at both logins
    esl = FakeEslServer([], plans=[Plan(count=0, after="drop"), Plan()])
    await esl.start()
    sim = ModemSimulator("generic", link=tmp_path / "ttyUSB-fs", time_scale=0.0)
    await sim.start()
    text = lab_config_toml(modem_port=sim.port, store=tmp_path / "textback.db",
                           pbx={"type": "freeswitch", "port": esl.port, "user": None,
                                "secret": "ClueCon", "records": str(cdr),
                                "ping_timeout_s": 1},
                           trunks={"settle_s": 0.2},
                           policy={"send_delay_s": 0, "stale_after_min": STALE_MIN})
    config = parse_config(text, tmp_path / "textback.toml", check_permissions=False)
    from textback.daemon import Daemon
    daemon = Daemon(config, modem_poll_s=0.1)
    task = asyncio.create_task(daemon.run())
    rig = Rig(tmp_path, FakeAmi(events=[]), sim)
    try:
        await until(lambda: esl.connections >= 2 and settled(rig, 4)
                    and len(sim.accepted) >= 1, timeout=15)
        await asyncio.sleep(0.5)
    finally:
        daemon.stop()
        async with asyncio.timeout(10):
            assert await task == 0
        await esl.close()
        await sim.stop()
    assert [a.decoded.number for a in sim.accepted] == [busy]
    calls = {c["caller"]: c for c in rig.query(
        "SELECT caller, verdict, reason, decision, skip_reason, "
        "json_extract(record, '$.recovered') AS recovered FROM calls")}
    assert (calls[busy]["reason"], calls[busy]["decision"], calls[busy]["recovered"]) == (
        "busy", "text", "cdr")
    assert (calls[answered]["verdict"], calls[answered]["recovered"]) == ("answered", "cdr")
    assert (calls[stale]["skip_reason"], calls[stale]["recovered"]) == ("stale", "cdr")
    assert len(calls) == 4
