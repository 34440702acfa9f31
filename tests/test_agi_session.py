"""Sans-IO FastAGI session and outcome mapping, on the real Asterisk 22 FastAGI captures."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import ASTERISK_TRACES
from hypothesis import given, settings
from hypothesis import strategies as st

from textback.pbx.asterisk.agi_session import (
    AgiProtocolError,
    AgiReply,
    AgiRequest,
    AgiSession,
    HangupNotice,
    parse_reply,
)
from textback.pbx.asterisk.agi_verdict import build_outcome, presentation_withheld

CAPTURES = sorted(ASTERISK_TRACES.glob("*.fastagi"))
# Expected per MANIFEST.md (FastAGI rows): caller, DIALSTATUS passed as agi_arg_1.
EXPECTED = {
    "direct-noanswer": ("+15551230101", "John Smith", "noanswer", "1795395438.50"),
    "direct-busy": ("+15551230102", "Mary Jones", "busy", "1795395452.52"),
    "ringgroup-noanswer": ("+15551230105", "Linda Green", "noanswer", "1795395458.54"),
    # The AGI ran between Dial and VoiceMail, so at that moment it was a plain no-answer.
    "voicemail-after-noanswer": ("+15551230112", "Laura Adams", "noanswer", "1795395472.58"),
}


def _request(data: bytes) -> AgiRequest:
    session = AgiSession()
    events = session.receive_data(data)
    assert len(events) == 1 and isinstance(events[0], AgiRequest)
    assert session.state == "idle"
    return events[0]


def test_all_four_captures_present() -> None:
    assert {p.name.removesuffix(".fastagi") for p in CAPTURES} == set(EXPECTED)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_environment(path: Path) -> None:
    req = _request(path.read_bytes())
    caller, name, _, uniqueid = EXPECTED[path.name.removesuffix(".fastagi")]
    assert req.path == "missed"
    assert req.query["status"] == req.args[0]
    assert req.args[1:] == [caller, "+15559870000"]
    assert req.get("callerid") == caller and req.get("calleridname") == name
    assert req.get("uniqueid") == uniqueid
    assert req.get("accountcode") == ""              # "agi_accountcode: " (empty value)
    assert req.get("version") == "22.11.0-rc1"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_outcome(path: Path) -> None:
    req = _request(path.read_bytes())
    caller, name, reason, uniqueid = EXPECTED[path.name.removesuffix(".fastagi")]
    out = build_outcome(req, {}, ended_at=1.0)
    assert out.to_record() == {
        "call": uniqueid, "direction": "inbound", "caller": caller, "withheld": False,
        "did": "+15559870000", "verdict": "missed", "reason": reason,
        "voicemail_left": False, "ring_s": 0.0, "pbx": "asterisk", "started_at": None,
        "ended_at": 1.0, "caller_name": name, "callee": None, "connected": False,
        "trigger": "fastagi", "dialstatus": req.args[0],
        "channel": req.get("channel"),
    }


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_any_chunking_same_request(path: Path) -> None:
    data = path.read_bytes()
    whole = _request(data)
    for size in (1, 2, 7, 64):
        session = AgiSession()
        events = []
        for i in range(0, len(data), size):
            events += session.receive_data(data[i:i + size])
        assert events == [whole]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_random_chunking(cuts: list[int]) -> None:
    data = CAPTURES[0].read_bytes()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    session = AgiSession()
    events = []
    for a, b in itertools.pairwise(points):
        events += session.receive_data(data[a:b])
    assert len(events) == 1 and isinstance(events[0], AgiRequest)


def test_command_reply_cycle_as_in_the_session_transcript() -> None:
    # direct-busy.fastagi.session.txt: VERBOSE … 1 → "200 result=1", then we close.
    session = AgiSession()
    session.receive_data((ASTERISK_TRACES / "direct-busy.fastagi").read_bytes())
    out = session.send_command('VERBOSE "textback: missed-call hook received" 1')
    assert out == b'VERBOSE "textback: missed-call hook received" 1\n'
    with pytest.raises(AgiProtocolError):
        session.send_command("VERBOSE again")          # one command at a time
    [reply] = session.receive_data(b"200 result=1\n")
    assert isinstance(reply, AgiReply) and reply.ok and reply.result == "1"
    session.receive_eof()
    assert session.state == "closed"


@pytest.mark.parametrize(("line", "code", "result", "data", "value"), [
    ("200 result=1", 200, "1", None, ""),
    ("200 result=0", 200, "0", None, None),
    ("200 result=1 (NOANSWER)", 200, "1", "NOANSWER", "NOANSWER"),
    ("200 result=1 (John (Office))", 200, "1", "John (Office)", "John (Office)"),
    ("200 result=1 (1795395452.52)", 200, "1", "1795395452.52", "1795395452.52"),
    ("200 result=1 ()", 200, "1", "", ""),
    ("510 Invalid or unknown command", 510, None, None, None),
    ("511 Command Not Permitted on a dead channel or intercept routine", 511, None, None, None),
    ("200 result=-1", 200, "-1", None, None),
])
def test_parse_reply(line: str, code: int, result: str | None, data: str | None,
                     value: str | None) -> None:
    r = parse_reply(line)
    assert (r.code, r.result, r.data, r.variable()) == (code, result, data, value)


def test_hangup_line_and_520_usage_reply() -> None:
    session = AgiSession()
    session.receive_data((ASTERISK_TRACES / "direct-noanswer.fastagi").read_bytes())
    session.send_command("GET VARIABLE")
    events = session.receive_data(
        b"HANGUP\n520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: GET VARIABLE <variablename>\n520 End of proper usage.\n"
    )
    assert isinstance(events[0], HangupNotice)
    assert isinstance(events[1], AgiReply) and events[1].code == 520
    assert len(events[1].usage) == 3 and session.state == "idle"


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",   # a TLS ClientHello
    b"\n",                                                # blank first line
    b"agi_network yes\n\n",                               # no colon
    b"AGI_NETWORK: yes\n\n",                              # not agi_ lower-case
])
def test_garbage_environment_is_refused(garbage: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        AgiSession().receive_data(garbage)


def test_one_megabyte_line_is_refused_without_buffering_it() -> None:
    session = AgiSession(max_line=8192)
    with pytest.raises(AgiProtocolError, match="longer than 8192"):
        for _ in range(128):
            session.receive_data(b"agi_x: " + b"A" * 8192)
    assert session.bytes_received < 20000   # refused on the second chunk, not at 1 MB


def test_reply_with_no_command_is_garbage() -> None:
    session = AgiSession()
    session.receive_data((ASTERISK_TRACES / "direct-busy.fastagi").read_bytes())
    with pytest.raises(AgiProtocolError, match="no command outstanding"):
        session.receive_data(b"200 result=1\n")


def test_eof_inside_environment_and_while_waiting() -> None:
    data = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes()
    s = AgiSession()
    s.receive_data(data[:100])
    with pytest.raises(AgiProtocolError, match="inside the AGI environment after 100 bytes"):
        s.receive_eof()
    s = AgiSession()
    s.receive_data(data)
    s.send_command("GET VARIABLE DIALSTATUS")
    with pytest.raises(AgiProtocolError, match="waited for its reply"):
        s.receive_eof()


def test_command_with_line_break_is_refused() -> None:
    s = AgiSession()
    s.receive_data((ASTERISK_TRACES / "direct-busy.fastagi").read_bytes())
    with pytest.raises(ValueError):
        s.send_command("VERBOSE x\nEXEC Dial PJSIP/900")


def _env(**fields: str) -> AgiRequest:
    base = (ASTERISK_TRACES / "direct-busy.fastagi").read_bytes().decode()
    env = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
               for line in base.splitlines() if line)
    env.update({f"agi_{k}": val for k, val in fields.items()})
    return AgiRequest(env={k: val for k, val in env.items() if val != "<drop>"})


@pytest.mark.parametrize(("status", "verdict", "reason"), [
    ("NOANSWER", "missed", "noanswer"), ("BUSY", "missed", "busy"),
    ("CHANUNAVAIL", "missed", "unavailable"), ("CONGESTION", "missed", "unavailable"),
    ("CANCEL", "missed", "abandon"), ("ANSWER", "answered", "answered"),
    ("answer", "answered", "answered"), ("", "ignored", "no-dialstatus"),
    ("TORTURE", "ignored", "unknown-dialstatus"),
])
def test_dialstatus_mapping(status: str, verdict: str, reason: str) -> None:
    req = _env(network_script=f"missed?status={status}", arg_1=status)
    out = build_outcome(req, {}, ended_at=None)
    assert (out.verdict, out.reason, out.connected) == (verdict, reason, verdict == "answered")


def test_status_from_get_variable_and_linkedid_preferred() -> None:
    req = _env(network_script="missed", arg_1="<drop>", arg_2="<drop>", arg_3="<drop>")
    out = build_outcome(req, {"DIALSTATUS": "NOANSWER", "CHANNEL(linkedid)": "1795395400.10"},
                        ended_at=None)
    assert (out.reason, out.call, out.caller, out.did) == (
        "noanswer", "1795395400.10", "+15551230102", "+15559870000")


def test_queue_and_voicemail_when_no_dial() -> None:
    req = _env(network_script="missed?status=&queue=TIMEOUT", arg_1="")
    assert build_outcome(req, {}, ended_at=None).reason == "queue-timeout"
    req = _env(network_script="missed", arg_1="")
    out = build_outcome(req, {"QUEUESTATUS": "", "VMSTATUS": "SUCCESS"}, ended_at=None)
    assert (out.reason, out.voicemail_left) == ("voicemail", True)
    out = build_outcome(_env(network_script="missed?status=NOANSWER&vm=SUCCESS"), {},
                        ended_at=None)
    assert (out.reason, out.voicemail_left) == ("voicemail", True)


@pytest.mark.parametrize(("numpres", "callingpres", "withheld"), [
    ("allowed_not_screened", "0", False), ("prohib_not_screened", "0", True),
    ("prohib", None, True), ("unavailable", None, True), (None, "32", True),
    (None, "35", True), (None, "67", True), (None, "0", False), (None, "3", False),
    (None, None, False),
])
def test_presentation(numpres: str | None, callingpres: str | None, withheld: bool) -> None:
    assert presentation_withheld(numpres, callingpres) is withheld


def test_withheld_caller_is_never_reported() -> None:
    out = build_outcome(_env(), {"CALLERID(num-pres)": "prohib_passed_screen"}, ended_at=None)
    assert (out.withheld, out.caller, out.caller_name) == (True, None, None)
    out = build_outcome(_env(callerid="anonymous", arg_2="anonymous"), {}, ended_at=None)
    assert (out.withheld, out.caller) == (True, None)


def test_hostile_values_are_cleaned() -> None:
    req = _env(callerid="+1555\r\nAT+CMGS", arg_2="+1555123\x1a0002\x1b",
               calleridname="Evil\r\nName\u202e", uniqueid="1.2\nX", arg_1="BUSY\r")
    out = build_outcome(req, {}, ended_at=None)
    rec = out.to_record()
    assert out.caller == "+15551230002"
    assert out.caller_name == "EvilName"
    for value in rec.values():
        if isinstance(value, str):
            assert not any(c in value for c in "\r\n\x1a\x1b\u202e")
