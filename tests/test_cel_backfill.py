"""Calls recovered from Asterisk's CEL records decide as the live tracker does.

The CEL rows here are REAL, not invented: every shared capture was recorded with CEL on
(cel.conf ``events = ALL``, ``[manager] enabled = yes``), so each ``Event: CEL`` message in
it is the record cel_sqlite3_custom / cel_custom write for the same event, field for field
(EventName → eventtype, EventTime → eventtime, Channel → channame, UniqueID, LinkedID,
Context, Exten, CallerIDnum, Peer, Extra …). Each capture's CEL rows alone must give the
capture's true verdicts and reasons (expected.jsonl), and ring_s within CEL's one-second
resolution; ``voicemail_left`` is the one fact CEL does not carry.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ASTERISK_TRACES, SHARED
from textback.pbx.asterisk.cel import (
    COLUMNS,
    CelError,
    decide_from_cel,
    read_cel_csv,
    read_cel_sqlite,
    record_from_mapping,
)
from textback.pbx.asterisk.parser import AmiParser
from textback.pbx.stream import TrackerConfig

LIVE = SHARED / "traces" / "asterisk-22-live"
FIELD_OF = {"eventtype": "EventName", "eventtime": "EventTime", "cid_name": "CallerIDname",
            "cid_num": "CallerIDnum", "cid_ani": "CallerIDani", "cid_dnid": "CallerIDdnid",
            "exten": "Exten", "context": "Context", "channame": "Channel",
            "appname": "Application", "appdata": "AppData", "uniqueid": "UniqueID",
            "linkedid": "LinkedID", "peer": "Peer", "extra": "Extra"}
CONFIG = TrackerConfig(default_region="US")


def cel_rows(capture: Path) -> list[dict[str, str]]:
    """The capture's CEL records as the CEL table's rows (column → text)."""
    parser = AmiParser()
    msgs = parser.feed(capture.read_bytes())
    return [{col: m.get(field) or "" for col, field in FIELD_OF.items()}
            for m in msgs if m.kind == "event" and m.name == "CEL"]


def expected(folder: Path) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for line in (folder / "expected.jsonl").read_text().splitlines():
        e = json.loads(line)
        out.setdefault(e["file"], []).append(e)
    return out


CASES = [(folder, name) for folder in (ASTERISK_TRACES, LIVE)
         for name in sorted(expected(folder))
         if any(e["direction"] == "inbound" for e in expected(folder)[name])]


@pytest.mark.parametrize(("folder", "name"), CASES,
                         ids=[f"{f.name}/{n}" for f, n in CASES])
def test_cel_rows_of_a_real_capture_give_its_true_verdicts(folder: Path, name: str) -> None:
    rows = cel_rows(folder / name)
    outcomes = decide_from_cel((record_from_mapping(r) for r in rows), CONFIG)
    got = {o.call: o for o in outcomes}
    for e in expected(folder)[name]:
        if e["direction"] != "inbound":
            continue
        o = got.get(str(e["call"]))
        assert o is not None, f"{name}: call {e['call']} not recovered from CEL"
        assert (o.direction, o.caller, o.did, o.verdict, o.reason) == (
            e["direction"], e["caller"], e["did"], e["verdict"], e["reason"]), (
            name, o.to_record())
        assert o.extra["recovered"] == "cel"
        if "ring_s" in e:  # CEL's eventtime has whole seconds here (no finer dateformat)
            assert abs(o.ring_s - float(e["ring_s"])) <= 1.0, (name, o.ring_s, e["ring_s"])
        # CEL has no VMSTATUS: a message left cannot be told from a greeting hung up on
        assert not o.voicemail_left


def test_calls_without_linkedid_end_are_left_to_the_live_link() -> None:
    rows = cel_rows(ASTERISK_TRACES / "direct-noanswer.ami")
    cut = [r for r in rows if r["eventtype"] != "LINKEDID_END"]
    assert decide_from_cel(record_from_mapping(r) for r in cut) == []


def test_calls_already_in_the_store_are_skipped() -> None:
    rows = cel_rows(ASTERISK_TRACES / "direct-noanswer.ami")
    recs = [record_from_mapping(r) for r in rows]
    call = decide_from_cel(recs)[0].call
    assert decide_from_cel(recs, skip=frozenset({call})) == []


def test_sqlite_and_csv_sources_read_the_shipped_columns(tmp_path: Path) -> None:
    rows = cel_rows(LIVE / "rg-local-noanswer.ami")
    db = tmp_path / "master.db"
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE cel (id INTEGER PRIMARY KEY, {', '.join(COLUMNS)})")
        con.executemany(f"INSERT INTO cel ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(COLUMNS))})",
                        [[r[c] for c in COLUMNS] for r in rows])
    csv_path = tmp_path / "Master.csv"
    import csv
    with csv_path.open("w", newline="") as f:
        csv.writer(f).writerows([[r[c] for c in COLUMNS] for r in rows])
    from_db = decide_from_cel(read_cel_sqlite(db, since=0), CONFIG)
    from_csv = decide_from_cel(read_cel_csv(csv_path, since=0), CONFIG)
    assert [o.to_record() for o in from_db] == [o.to_record() for o in from_csv]
    assert [o.verdict for o in from_db] == ["missed"]
    # rows before `since` are not read
    assert read_cel_sqlite(db, since=4_000_000_000) == []


def test_a_missing_or_foreign_source_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CelError, match="does not exist"):
        read_cel_sqlite(tmp_path / "nope.db", since=0)
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE cel (id INTEGER, foo TEXT)")
    with pytest.raises(CelError, match="lacks the column"):
        read_cel_sqlite(db, since=0)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(CelError, match="line 1: 3 fields"):
        read_cel_csv(bad, since=0)


def test_the_shipped_cel_events_are_enough() -> None:
    """Only the events dialplan/asterisk/cel.conf enables reach the file: with the
    captures' rows cut down to those, every inbound call still decides right."""
    from tests.test_dialplan import shipped_cel_events
    events = shipped_cel_events()
    for folder, name in CASES:
        rows = [r for r in cel_rows(folder / name) if r["eventtype"] in events]
        got = {o.call: o for o in decide_from_cel(
            (record_from_mapping(r) for r in rows), CONFIG)}
        for e in expected(folder)[name]:
            if e["direction"] == "inbound":
                o = got[str(e["call"])]
                assert (o.verdict, o.reason) == (e["verdict"], e["reason"]), name


def test_a_call_that_began_before_since_is_read_whole(tmp_path: Path) -> None:
    """Recovery reads from when textback was last alive; a call ringing at that moment
    has its first records before it: they are read too, or its trunk channel, caller
    and DID would be missing."""
    import csv
    rows = cel_rows(ASTERISK_TRACES / "direct-noanswer.ami")
    start = min(record_from_mapping(r).at for r in rows)
    db = tmp_path / "master.db"
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE cel (id INTEGER PRIMARY KEY, {', '.join(COLUMNS)})")
        con.executemany(f"INSERT INTO cel ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(COLUMNS))})",
                        [[r[c] for c in COLUMNS] for r in rows])
    con.close()
    csv_path = tmp_path / "Master.csv"
    with csv_path.open("w", newline="") as f:
        csv.writer(f).writerows([[r[c] for c in COLUMNS] for r in rows])
    for records in (read_cel_sqlite(db, since=start + 1), read_cel_csv(csv_path,
                                                                       since=start + 1)):
        assert len(records) == len(rows)
        (o,) = decide_from_cel(records, CONFIG)
        assert (o.caller, o.did, o.verdict, o.reason) == (
            "+15551230001", "+15559870000", "missed", "noanswer")


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> object:
    """This host's local time zone is New York (UTC-5 in November)."""
    import time
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_eventtime_epoch_or_local_date(new_york: object) -> None:
    """Asterisk's default eventtime is an epoch; a ``dateformat`` such as FreePBX's
    ``%F %T`` is written in the PBX's local time, which is this host's."""
    from textback.pbx.asterisk.cel import parse_eventtime
    assert parse_eventtime("1795395183.123456") == 1795395183.123456
    # 2026-11-23 00:53:03 in New York is 05:53:03 UTC
    assert parse_eventtime("2026-11-23 00:53:03") == 1795413183.0
    with pytest.raises(CelError, match="neither an epoch"):
        parse_eventtime("23/11/2026 00:53")


def test_a_local_dateformat_is_bounded_in_local_time(tmp_path: Path, new_york: object) -> None:
    """The SQL bound on a date-formatted eventtime is in the same local time as the
    parse: a call from an hour ago is read, one from a day ago is not."""
    from textback.pbx.asterisk.cel import parse_eventtime
    rows = cel_rows(ASTERISK_TRACES / "direct-noanswer.ami")
    last = max(parse_eventtime(r["eventtime"]) for r in rows)
    db = tmp_path / "master.db"
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE cel (id INTEGER PRIMARY KEY, {', '.join(COLUMNS)})")
        con.executemany(f"INSERT INTO cel ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(COLUMNS))})",
                        [[r[c] for c in COLUMNS] for r in rows])
    con.close()
    assert len(read_cel_sqlite(db, since=last - 3600)) == len(rows)
    assert read_cel_sqlite(db, since=last + 60) == []
    # a bound 4 hours after the call (less than the UTC offset) reads nothing either
    assert read_cel_sqlite(db, since=last + 4 * 3600) == []


def test_a_half_written_or_garbled_row_costs_only_itself(tmp_path: Path) -> None:
    """Asterisk appends while textback reads: the last CSV line may be half written, and a
    row may carry an eventtime in no known form. The other calls still recover."""
    import csv
    rows = cel_rows(LIVE / "rg-local-noanswer.ami")
    path = tmp_path / "Master.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([[r[c] for c in COLUMNS] for r in rows])
        f.write('"CHAN_START","179539')  # the line being written
    got = decide_from_cel(read_cel_csv(path, since=0), CONFIG)
    assert [o.verdict for o in got] == ["missed"]
    db = tmp_path / "master.db"
    bad = dict(rows[0], eventtime="yesterday", linkedid="other", uniqueid="other")
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE cel (id INTEGER PRIMARY KEY, {', '.join(COLUMNS)})")
        con.executemany(f"INSERT INTO cel ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(COLUMNS))})",
                        [[r[c] for c in COLUMNS] for r in [bad, *rows]])
    con.close()
    assert [o.verdict for o in decide_from_cel(read_cel_sqlite(db, since=0), CONFIG)] == [
        "missed"]
