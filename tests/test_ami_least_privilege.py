"""The tracker with only what the shipped least-privilege manager user receives.

dialplan/asterisk/manager_textback.conf grants ``read = call,cdr,agent,user`` (no
``dialplan``: no VarSet, no Newexten) and narrows it further with eventfilter lines.
Every shared capture is replayed (1) with its VarSet and Newexten events removed and
(2) reduced to exactly the events that user would be sent (read classes + eventfilters,
applied to the real bytes), and the verdicts must equal expected.jsonl. The client's login
Events mask must stay inside what that user is granted.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ASTERISK_TRACES
from tests.manager_user import CLASSES, as_filtered, delivered
from textback.pbx.asterisk.client import DEFAULT_EVENTS
from textback.pbx.asterisk.stream import AsteriskStream
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig

EXPECTED = [json.loads(line) for line in
            (ASTERISK_TRACES / "expected.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
CALL_FILES = sorted({e["file"] for e in EXPECTED if e["direction"] == "inbound"})
KEYS = ("call", "direction", "verdict", "reason", "caller", "withheld", "did",
        "voicemail_left")


def _blocks(name: str) -> list[bytes]:
    return (ASTERISK_TRACES / name).read_bytes().split(b"\r\n\r\n")


def _without_dialplan_class(name: str) -> bytes:
    return b"\r\n\r\n".join(b for b in _blocks(name)
                            if not b.startswith((b"Event: VarSet", b"Event: Newexten")))


def _as_filtered(name: str) -> bytes:
    return as_filtered((ASTERISK_TRACES / name).read_bytes())


def _replay(data: bytes) -> list[CallOutcome]:
    s = AsteriskStream(TrackerConfig())
    out = s.feed(data)
    out += s.finish()
    return out


def _check(name: str, data: bytes) -> None:
    got = {o.call: {k: getattr(o, k) for k in KEYS} for o in _replay(data)
           if o.direction == "inbound"}
    want = [e for e in EXPECTED if e["file"] == name and e["direction"] == "inbound"]
    assert sorted(got) == sorted(e["call"] for e in want), name
    for e in want:
        g = got[e["call"]]
        assert g == {k: e[k] for k in KEYS}, (name, e["call"])


@pytest.mark.parametrize("name", CALL_FILES)
def test_verdicts_without_varset_and_newexten(name: str) -> None:
    data = _without_dialplan_class(name)
    assert b"Event: VarSet" not in data and b"Event: Newexten" not in data
    _check(name, data)


@pytest.mark.parametrize("name", CALL_FILES)
def test_verdicts_with_only_what_the_manager_user_is_sent(name: str) -> None:
    data = _as_filtered(name)
    for noise in (b"Event: VarSet", b"Event: Newexten", b"Event: DeviceStateChange",
                  b"EventName: CHAN_START"):
        assert noise not in data, noise
    assert b"Event: Hangup\r\n" in data
    _check(name, data)


def test_the_filter_really_removes_most_of_the_traffic() -> None:
    total = kept = 0
    for name in CALL_FILES:
        total += sum(b.startswith(b"Event: ") for b in _blocks(name))
        kept += _as_filtered(name).count(b"Event: ")
    assert kept < total / 2, (kept, total)


def test_client_events_mask_is_granted_by_the_manager_user() -> None:
    mask = set(DEFAULT_EVENTS.split(","))
    assert {"call", "cdr", "agent", "user"} == CLASSES
    assert mask <= CLASSES, mask - CLASSES
    # the inbound SIP MESSAGE hand-off (UserEvent, class user) and the call classes
    assert {"call", "agent", "user"} <= mask
    # headers as Asterisk 22 sends a UserEvent (class user) for the dialplan's
    # UserEvent(TextbackMessage,...) in dialplan/asterisk/extensions_textback.conf
    user_event = (b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: TextbackMessage"
                  b"\r\nFrom: sip%3A%2B15551230001%40127.0.0.1")
    assert delivered(user_event, mask)
