"""Hostile caller IDs and templates never reach the serial line or a log line raw.

The calls are the real direct-noanswer trace (harness.MISSED_CALL) with CallerIDNum /
CallerIDName rewritten to hostile values, as a compromised trunk or a spoofing caller could
send them; the template and business name carry the same kinds of bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.reliability.harness import REAL_CALLER, caller_for, record, run_once
from textback.testing.lab_config import lab_config

HOSTILE = [
    b"+1555\r3000001", b"+1555\n3000002", b"+15553000003\x1a", b"\x1b[2J+15553000004",
    b"+15553000005;AT+CMGD=1,4", b"AT+CFUN=0\r\n", b"+1555" + b"9" * 195,
    "\u202e+15553000008".encode(), "+1555\u200b3000009".encode(),
]
NAMES = [b"Eve\rAT+CMGS=5", b"Eve\x1a\x1b[31m", "\u202eEve\u200b".encode(), b"A" * 200,
         b"Eve;DROP", b"Eve\nFAKE: header"]
SAFE_NAME = b"John Smith"
FRAGMENTS = [b"AT+CMGD=1,4", b"AT+CFUN=0", b"DROP", b"FAKE", b"Eve", "\u202e".encode(),
             "\u200b".encode()]
TEMPLATE = ("Missed you \x1b[31m\x1a;AT+CMGD=1,4 \u202eRTL\u200b - {business}. "
            "Reply STOP to opt out")


def mutate(i: int, raw: bytes) -> bytes:
    """Calls 0..8: hostile number (and a hostile name); 9..14: a valid number with a
    hostile name only (so the text is sent and the name reaches logs)."""
    caller = caller_for(i).encode()
    if i < len(HOSTILE):
        raw = raw.replace(caller, HOSTILE[i])
    name = NAMES[i % len(NAMES)]
    return raw.replace(SAFE_NAME, name)


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


async def test_hostile_caller_ids_and_templates_never_reach_serial_or_logs_raw(
        tmp_path: Path) -> None:
    n = len(HOSTILE) + len(NAMES)
    did = {**lab_config()["did"][0], "templates": {"business_hours": TEMPLATE}}
    run = await run_once(tmp_path, n, mutate=mutate, config={"did": [did]})
    assert run.status in (0, -15), "".join(run.logs[-20:])
    assert REAL_CALLER not in run.wire
    # every byte between AT+CMGS=<n>\r and Ctrl-Z is hex
    sends = re.findall(rb"AT\+CMGS=(\d+)\r(.*?)\x1a", run.wire, re.S)
    assert sends, "nothing was sent: the hostile-name calls should have been texted"
    for _, pdu in sends:
        assert re.fullmatch(rb"[0-9A-F]+", pdu), pdu[:80]
    # outside PDUs, only AT command lines of printable ASCII
    outside = re.sub(rb"AT\+CMGS=\d+\r[0-9A-F]*\x1a", b"", run.wire)
    assert re.fullmatch(rb"[\x20-\x7e\r\x1b]*", outside), outside[:200]
    for frag in FRAGMENTS:
        assert frag not in outside
    # logs: no raw control, bidi or zero-width characters, no injected line
    bad = [line for line in run.logs if CONTROL.search(line.rstrip("\n"))]
    assert bad == [], bad[:3]
    assert not any(line.startswith("FAKE") for line in run.logs)
    texted_valid = sum(run.sent[caller_for(i)] for i in range(len(HOSTILE), n))
    assert texted_valid == len(NAMES)
    record("hostile caller IDs / names / template (daemon subprocess)", n, n, 0,
           sum(max(0, v - 1) for v in run.sent.values()), None,
           pdus_checked=len(sends), log_lines_checked=len(run.logs))
