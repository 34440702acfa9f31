"""Every shared Asterisk capture replayed through AsteriskStream against expected.jsonl."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ASTERISK_TRACES, REPO
from textback.pbx.asterisk.parser import AmiParser
from textback.pbx.asterisk.stream import AsteriskStream
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import StreamError, TrackerConfig
from textback.pbx.streams import make_stream

EXPECTED = [json.loads(line) for line in
            (ASTERISK_TRACES / "expected.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
FILES = sorted({e["file"] for e in EXPECTED})
CALL_FILES = [f for f in FILES if any(e["direction"] == "inbound"
                                      for e in EXPECTED if e["file"] == f)]
KEYS = ("call", "direction", "verdict", "reason", "caller", "withheld", "did",
        "voicemail_left")


def replay(data: bytes, chunks: list[int] | None = None) -> list[CallOutcome]:
    s = AsteriskStream(TrackerConfig())
    out: list[CallOutcome] = []
    if chunks is None:
        out += s.feed(data)
    else:
        i = 0
        for n in chunks:
            out += s.feed(data[i:i + n])
            i += n
        out += s.feed(data[i:])
    return out + s.finish()


def key(o: CallOutcome) -> tuple[object, ...]:
    rec = o.to_record()
    return tuple(rec[k] for k in KEYS)


@pytest.mark.parametrize("name", FILES)
def test_capture_matches_expected(name: str) -> None:
    out = replay((ASTERISK_TRACES / name).read_bytes())
    want = sorted(tuple(e[k] for k in KEYS) for e in EXPECTED if e["file"] == name)
    assert sorted(key(o) for o in out) == want
    assert len({o.call for o in out}) == len(out)  # exactly one record per call
    for o in out:
        if o.direction != "inbound":
            assert o.verdict == "ignored" and o.reason == o.direction
        assert o.ring_s >= 0
        assert (o.verdict == "answered") == (o.reason == "answered")


@pytest.mark.parametrize("name", [p.name for p in sorted(ASTERISK_TRACES.glob("*.ami"))
                                  if p.name not in FILES])
def test_captures_without_calls_give_no_record(name: str) -> None:
    assert replay((ASTERISK_TRACES / name).read_bytes()) == []


@pytest.mark.parametrize("name", FILES)
def test_random_chunking_gives_the_same_records(name: str) -> None:
    data = (ASTERISK_TRACES / name).read_bytes()
    whole = sorted(key(o) for o in replay(data))
    rng = random.Random(name)
    for _ in range(3):
        chunks = [rng.randint(1, 2000) for _ in range(len(data) // 500 + 1)]
        assert sorted(key(o) for o in replay(data, chunks)) == whole


def _renumber(data: bytes, shift: int) -> bytes:
    """New ids for a second copy: Uniqueid/Linkedid sequence numbers and bridge ids."""
    data = re.sub(rb"(1795395\d{3})\.(\d+)",
                  lambda m: m[1] + b"." + str(int(m[2]) + shift).encode(), data)
    return data.replace(b"BridgeUniqueid: ", b"BridgeUniqueid: r%d-" % shift)


def _blocks(data: bytes) -> list[bytes]:
    msgs = AmiParser().feed(data)
    return [(m.text.replace("\n", "\r\n") + "\r\n\r\n").encode() for m in msgs
            if m.kind == "event"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=st.sampled_from(CALL_FILES), b=st.sampled_from(CALL_FILES),
       order=st.lists(st.booleans(), min_size=0, max_size=400))
def test_interleaved_captures_give_the_union_of_verdicts(a: str, b: str,
                                                         order: list[bool]) -> None:
    da = (ASTERISK_TRACES / a).read_bytes()
    db = _renumber((ASTERISK_TRACES / b).read_bytes(), 1000)
    want = sorted(key(o) for o in replay(da) + replay(db))
    ea, eb = _blocks(da), _blocks(db)
    merged: list[bytes] = []
    i = j = 0
    for take_a in order:
        if take_a and i < len(ea):
            merged.append(ea[i])
            i += 1
        elif j < len(eb):
            merged.append(eb[j])
            j += 1
    merged += ea[i:] + eb[j:]
    assert sorted(key(o) for o in replay(b"".join(merged))) == want


def test_garbage_and_a_huge_line_lose_nothing() -> None:
    data = (ASTERISK_TRACES / "concurrent-mixed.ami").read_bytes()
    cut = data.index(b"Event: DialBegin")
    bad = (data[:cut] + b"\x00\x1b]0;evil\x07\r\n" + b"Z" * (1024 * 1024) + b"\r\n\r\n"
           + data[cut:])
    s = AsteriskStream()
    out: list[CallOutcome] = []
    for i in range(0, len(bad), 65536):
        out += s.feed(bad[i:i + 65536])
    out += s.finish()
    assert sorted(key(o) for o in out) == sorted(key(o) for o in replay(data))
    assert s.stats.dropped  # counted, not silent


def test_capture_cut_mid_call_is_finalised_at_end_of_input() -> None:
    data = (ASTERISK_TRACES / "direct-answered.ami").read_bytes()
    cut = data.index(b"Event: BridgeEnter")
    (o,) = replay(data[:cut + 40])  # ends inside a message
    assert o.call == "1795395247.16" and o.direction == "inbound"
    s = AsteriskStream()
    s.feed(data[:cut + 40])
    s.finish()
    assert s.stats.dropped == {"parse-truncated": 1}


def test_not_an_ami_stream_names_the_offset() -> None:
    s = make_stream("asterisk")
    with pytest.raises(StreamError) as err:
        for _ in range(3):
            s.feed(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 100)
    assert err.value.offset == 0 and "not an Asterisk Manager stream" in str(err.value)


def test_cli_replay_contract(tmp_path: Path) -> None:
    exe = [sys.executable, "-m", "textback", "replay", "--pbx", "asterisk"]
    res = subprocess.run([*exe, str(ASTERISK_TRACES / "concurrent-mixed.ami")], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [list(r)[:9] for r in recs] == [["call", "direction", "caller", "withheld", "did",
                                            "verdict", "reason", "voicemail_left",
                                            "ring_s"]] * 3
    junk = tmp_path / "junk.ami"
    junk.write_bytes(bytes(range(256)) * 400)
    res = subprocess.run([*exe, str(junk)], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 1 and "byte 0" in res.stderr and res.stdout == ""
