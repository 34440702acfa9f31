"""Calls recovered from FreeSWITCH's CDR decide as the live tracker does.

The CDR rows here are REAL, not invented: mod_cdr_sqlite and mod_cdr_csv write one row per
channel in its reporting state, expanding the shipped template (dialplan/freeswitch/
cdr_sqlite.conf.xml, cdr_csv.conf.xml) against that channel's variables at that moment —
exactly the variables the channel's CHANNEL_HANGUP_COMPLETE event carries
(``variable_start_uepoch``, ``variable_bridge_uepoch``, ``variable_originate_disposition``,
``variable_last_app``, ``variable_sofia_profile_name``, ``variable_originator``, ...; the
caller-profile fields ``${caller_id_number}``, ``${destination_number}``, ``${context}`` are
the event's ``Caller-Caller-ID-Number``, ``Caller-Destination-Number``, ``Caller-Context``).
So each capture's CHANNEL_HANGUP_COMPLETE events give the CDR rows that FreeSWITCH would
have written for the same calls, a- and b-legs (the shipped templates set legs="ab").
Those rows alone must give every inbound call's true direction, caller, DID, verdict,
reason and voicemail_left (expected.jsonl), and the live tracker's ring_s.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import FREESWITCH_TRACES
from textback.pbx.freeswitch.cdr import (
    COLUMNS,
    CdrError,
    decide_from_cdr,
    decide_row,
    read_cdr_csv,
    read_cdr_sqlite,
)
from textback.pbx.freeswitch.parser import decode_event, iter_frames
from textback.pbx.freeswitch.stream import FreeswitchStream
from textback.pbx.stream import TrackerConfig

# CDR column → the CHANNEL_HANGUP_COMPLETE header holding the same channel variable
HEADER_OF = {
    "uuid": "variable_uuid", "direction": "variable_direction",
    "sofia_profile": "variable_sofia_profile_name", "context": "Caller-Context",
    "sip_authorized": "variable_sip_authorized",
    "caller_id_number": "Caller-Caller-ID-Number", "caller_id_name": "Caller-Caller-ID-Name",
    "destination_number": "Caller-Destination-Number",
    "start_uepoch": "variable_start_uepoch", "answer_uepoch": "variable_answer_uepoch",
    "bridge_uepoch": "variable_bridge_uepoch", "end_uepoch": "variable_end_uepoch",
    "hangup_cause": "variable_hangup_cause",
    "originate_disposition": "variable_originate_disposition",
    "last_app": "variable_last_app", "voicemail_message_len": "variable_voicemail_message_len",
    "originator": "variable_originator",
    "sip_hangup_disposition": "variable_sip_hangup_disposition",
    "cc_queue": "variable_cc_queue", "cc_cancel_reason": "variable_cc_cancel_reason",
}
CONFIG = TrackerConfig(default_region="US")
KEYS = ("direction", "caller", "withheld", "did", "verdict", "reason", "voicemail_left")


def cdr_rows(capture: Path) -> list[dict[str, str]]:
    """The CDR rows FreeSWITCH writes for the capture's channels (column → text; a
    variable the channel never had expands to "")."""
    rows = []
    for frame in iter_frames(capture.read_bytes()):
        ev = decode_event(frame) if frame.is_event else None
        if ev is not None and ev.name == "CHANNEL_HANGUP_COMPLETE":
            rows.append({col: ev.get(h) or "" for col, h in HEADER_OF.items()})
    return rows


def expected() -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for line in (FREESWITCH_TRACES / "expected.jsonl").read_text().splitlines():
        if line.strip():
            e = json.loads(line)
            out.setdefault(e["file"], []).append(e)
    return out


EXPECTED = expected()
CASES = sorted(name for name, calls in EXPECTED.items()
               if any(c["direction"] == "inbound" for c in calls))


def test_the_column_map_covers_the_shipped_columns() -> None:
    assert tuple(HEADER_OF) == COLUMNS


@pytest.mark.parametrize("name", CASES)
def test_cdr_rows_of_a_real_capture_give_its_true_verdicts(name: str) -> None:
    rows = cdr_rows(FREESWITCH_TRACES / name)
    got = {o.call: o for o in decide_from_cdr(rows, CONFIG)}
    live = FreeswitchStream(CONFIG)
    tracked = live.feed((FREESWITCH_TRACES / name).read_bytes()) + live.finish()
    ring_live = {o.call: o.ring_s for o in tracked}
    for e in EXPECTED[name]:
        if e["direction"] != "inbound":
            continue
        o = got.get(str(e["call"]))
        assert o is not None, f"{name}: call {e['call']} not recovered from the CDR"
        assert {k: o.to_record()[k] for k in KEYS} == {k: e[k] for k in KEYS}, name
        assert o.extra["recovered"] == "cdr"
        assert abs(o.ring_s - ring_live[o.call]) <= 0.5, (name, o.ring_s, ring_live[o.call])


@pytest.mark.parametrize("name", CASES)
def test_a_legs_alone_decide_the_same(name: str) -> None:
    """With ``legs="a"`` (no b-leg rows) the a-leg's row still carries the decision."""
    rows = [r for r in cdr_rows(FREESWITCH_TRACES / name) if not r["originator"]]
    got = {o.call: o for o in decide_from_cdr(rows, CONFIG)}
    for e in EXPECTED[name]:
        if e["direction"] == "inbound":
            o = got[str(e["call"])]
            assert (o.verdict, o.reason, o.voicemail_left) == (
                e["verdict"], e["reason"], e["voicemail_left"])


@pytest.mark.parametrize("name", ["internal-noanswer.esl", "outbound-noanswer.esl"])
def test_staff_calls_keep_their_direction_and_are_never_missed(name: str) -> None:
    got = decide_from_cdr(cdr_rows(FREESWITCH_TRACES / name), CONFIG)
    want = {str(e["call"]): e for e in EXPECTED[name]}
    assert [o.call for o in got] == list(want)
    for o in got:
        assert (o.direction, o.verdict, o.reason) == (
            want[o.call]["direction"], "ignored", want[o.call]["direction"])
    if name == "outbound-noanswer.esl":
        assert got[0].callee == "+15553334444" and not got[0].connected


def _a_leg(**over: str) -> dict[str, str]:
    row = {c: "" for c in COLUMNS}
    row.update(uuid="a1", direction="inbound", sofia_profile="external", context="public",
               caller_id_number="+15552220001", destination_number="+15559870000",
               start_uepoch="1795394838000000", answer_uepoch="0", bridge_uepoch="0",
               end_uepoch="1795394846000000", hangup_cause="NORMAL_CLEARING",
               last_app="bridge")
    row.update(over)
    return row


@pytest.mark.parametrize(("over", "reason"), [
    # FreeSWITCH's documented originate dispositions / hang-up causes (switch_types.h)
    ({"originate_disposition": "NO_USER_RESPONSE"}, "noanswer"),
    ({"originate_disposition": "ALLOTTED_TIMEOUT"}, "noanswer"),
    ({"originate_disposition": "CALL_REJECTED"}, "busy"),
    ({"originate_disposition": "SUBSCRIBER_ABSENT"}, "unavailable"),
    ({"originate_disposition": "NO_ROUTE_DESTINATION"}, "unavailable"),
    ({"originate_disposition": "GATEWAY_DOWN"}, "unavailable"),
    # the first bridge rang out, the caller hung up during what followed (pre-answer)
    ({"originate_disposition": "NO_ANSWER", "sip_hangup_disposition": "recv_cancel"},
     "abandon"),
    # hung up before any bridge: no disposition, the cause says it
    ({"hangup_cause": "ORIGINATOR_CANCEL", "last_app": "playback"}, "abandon"),
    # an IVR answered, the caller left without a bridge
    ({"answer_uepoch": "1795394839000000", "last_app": "play_and_get_digits"}, "ivr-abandon"),
    ({"answer_uepoch": "1795394839000000", "last_app": "callcenter", "cc_queue": "support",
      "cc_cancel_reason": "TIMEOUT"}, "queue-timeout"),
    ({"answer_uepoch": "1795394839000000", "last_app": "callcenter", "cc_queue": "support",
      "cc_cancel_reason": "NONE"}, "queue-abandon"),
    ({"answer_uepoch": "1795394840000000", "last_app": "voicemail",
      "voicemail_message_len": "00:00:00"}, "voicemail"),
])
def test_documented_endings_give_the_trackers_reason(over: dict[str, str], reason: str) -> None:
    o = decide_row(_a_leg(**over), CONFIG)
    assert o is not None and (o.verdict, o.reason) == ("missed", reason)
    assert not o.voicemail_left


def test_a_bridge_or_success_is_a_person_and_sip_authorized_is_staff() -> None:
    o = decide_row(_a_leg(bridge_uepoch="1795394840000000",
                          answer_uepoch="1795394840000000"), CONFIG)
    assert o is not None and (o.verdict, o.ring_s) == ("answered", 2.0)
    o = decide_row(_a_leg(originate_disposition="SUCCESS"), CONFIG)
    assert o is not None and o.verdict == "answered"
    o = decide_row(_a_leg(sip_authorized="true"), CONFIG)
    assert o is not None and (o.direction, o.verdict) == ("internal", "ignored")
    assert decide_row(_a_leg(originator="a0"), CONFIG) is None  # a b-leg


def _write_sqlite(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS
                  ) -> None:
    with sqlite3.connect(path) as con:
        con.execute(f"CREATE TABLE cdr ({', '.join(columns)})")
        con.executemany(f"INSERT INTO cdr VALUES ({', '.join('?' * len(columns))})",
                        [[r.get(c, "") for c in columns] for r in rows])
    con.close()


def test_sqlite_and_csv_sources_read_the_shipped_columns(tmp_path: Path) -> None:
    rows = cdr_rows(FREESWITCH_TRACES / "concurrent-mixed.esl")
    db = tmp_path / "cdr.db"
    _write_sqlite(db, rows)
    csv_path = tmp_path / "Master.csv"
    with csv_path.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows([[r[c] for c in COLUMNS] for r in rows])
    from_db = decide_from_cdr(read_cdr_sqlite(db, since=0), CONFIG)
    from_csv = decide_from_cdr(read_cdr_csv(csv_path, since=0), CONFIG)
    assert [o.to_record() for o in from_db] == [o.to_record() for o in from_csv]
    assert [(o.verdict, o.reason) for o in from_db] == [
        ("missed", "noanswer"), ("answered", "answered"), ("missed", "busy")]
    # rows that ended before `since` are not read
    assert read_cdr_sqlite(db, since=4_000_000_000) == []
    assert read_cdr_csv(csv_path, since=4_000_000_000) == []
    # calls already decided are skipped
    skip = frozenset({from_db[0].call})
    assert [o.call for o in decide_from_cdr(read_cdr_csv(csv_path, since=0), CONFIG,
                                            skip=skip)] == [o.call for o in from_db[1:]]


def test_a_missing_locked_or_foreign_source_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CdrError, match="does not exist"):
        read_cdr_sqlite(tmp_path / "nope.db", since=0)
    with pytest.raises(CdrError, match="No such file"):
        read_cdr_csv(tmp_path / "nope.csv", since=0)
    stock = tmp_path / "stock.db"  # mod_cdr_sqlite's own default schema, not ours
    _write_sqlite(stock, [], ("caller_id_name", "caller_id_number", "destination_number",
                              "context", "start_stamp", "answer_stamp", "end_stamp",
                              "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid",
                              "account_code"))
    with pytest.raises(CdrError, match=r"lacks the column.*bridge_uepoch"):
        read_cdr_sqlite(stock, since=0)
    notdb = tmp_path / "garbage.db"
    notdb.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CdrError, match=r"garbage\.db"):
        read_cdr_sqlite(notdb, since=0)
    locked = tmp_path / "locked.db"
    _write_sqlite(locked, cdr_rows(FREESWITCH_TRACES / "direct-busy.esl"))
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(CdrError, match="locked"):
            read_cdr_sqlite(locked, since=0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n")
    with pytest.raises(CdrError, match="line 1: 3 fields"):
        read_cdr_csv(bad, since=0)


def test_a_garbled_csv_line_is_skipped_and_the_rest_recover(tmp_path: Path) -> None:
    """mod_cdr_csv does not escape a quote inside a caller's name: that line alone is
    lost, never the whole file."""
    rows = cdr_rows(FREESWITCH_TRACES / "direct-busy.esl")
    lines = [",".join(f'"{r[c]}"' for c in COLUMNS) for r in rows]
    broken = dict(rows[0], caller_id_name='O"Brien, Pat', uuid="garbled")
    lines.insert(0, ",".join(f'"{broken[c]}"' for c in COLUMNS))
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(lines) + "\n")
    got = decide_from_cdr(read_cdr_csv(path, since=0), CONFIG)
    assert [(o.call, o.reason) for o in got] == [
        ("1a8ab39c-ab82-4fba-88fd-58f3617350b0", "busy")]


def test_b_legs_that_ended_before_since_are_read_with_their_a_leg(tmp_path: Path) -> None:
    """Voicemail after a ring: the b-leg gave up before ``since``, the a-leg ended after;
    the b-leg's row still joins its a-leg (it tells when the ringing ended)."""
    rows = cdr_rows(FREESWITCH_TRACES / "voicemail-after-noanswer.esl")
    b_end = min(int(r["end_uepoch"]) for r in rows) / 1e6
    db = tmp_path / "cdr.db"
    _write_sqlite(db, rows)
    csv_path = tmp_path / "Master.csv"
    with csv_path.open("w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows([[r[c] for c in COLUMNS] for r in rows])
    for got in (read_cdr_sqlite(db, since=b_end + 1), read_cdr_csv(csv_path, since=b_end + 1)):
        assert len(got) == len(rows) == 2
    assert read_cdr_sqlite(db, since=4_000_000_000) == []
