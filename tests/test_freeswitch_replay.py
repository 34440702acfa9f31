"""Every shared FreeSWITCH capture replayed through FreeswitchStream equals expected.jsonl."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from tests.conftest import FREESWITCH_TRACES
from textback.pbx.freeswitch.stream import FreeswitchStream
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import StreamError, TrackerConfig
from textback.testing.fake_esl import capture_event_frames

KEYS = ("call", "direction", "caller", "withheld", "did", "verdict", "reason", "voicemail_left")


def _expected() -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for line in (FREESWITCH_TRACES / "expected.jsonl").read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out.setdefault(rec.pop("file"), []).append(rec)
    return out


EXPECTED = _expected()


def replay(data: bytes, chunks: list[int] | None = None,
           config: TrackerConfig | None = None) -> tuple[list[CallOutcome], FreeswitchStream]:
    s = FreeswitchStream(config or TrackerConfig())
    out: list[CallOutcome] = []
    i, k = 0, 0
    sizes = chunks or [64 * 1024]
    while i < len(data):
        n = sizes[k % len(sizes)]
        out += s.feed(data[i:i + n])
        i, k = i + n, k + 1
    out += s.finish()
    return out, s


def _records(outs: list[CallOutcome]) -> list[dict[str, object]]:
    return sorted(({k: o.to_record()[k] for k in KEYS} for o in outs), key=lambda r: str(r["call"]))


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_capture_replays_to_expected(name: str) -> None:
    outs, stream = replay((FREESWITCH_TRACES / name).read_bytes())
    want = sorted(EXPECTED[name], key=lambda r: str(r["call"]))
    assert _records(outs) == want
    assert stream.stats.dropped == {}
    for o in outs:
        assert o.pbx == "freeswitch"
        assert o.started_at is not None and o.ended_at is not None
        assert 0 <= o.ring_s <= o.ended_at - o.started_at + 1e-6


def test_answered_calls_are_connected_and_ring_until_the_answer() -> None:
    outs, _ = replay((FREESWITCH_TRACES / "ringgroup-answered.esl").read_bytes())
    (o,) = outs
    assert o.connected and 1.5 < o.ring_s < 2.5  # 102 answered after ~2 s
    assert o.caller_name == "ERIN CALLER"
    outs, _ = replay((FREESWITCH_TRACES / "outbound-noanswer.esl").read_bytes())
    (o,) = outs
    assert o.callee == "+15553334444" and not o.connected


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=str)
def test_chunking_fuzz(name: str) -> None:
    data = (FREESWITCH_TRACES / name).read_bytes()
    want = _records(replay(data)[0])
    rng = random.Random(name)
    for _ in range(3):
        sizes = [rng.choice([1, 7, 100, 1500, 4096, 70000]) for _ in range(40)]
        if 1 in sizes[:3]:
            sizes = sizes[3:] or [100]
        assert _records(replay(data, sizes)[0]) == want


def _renumber(data: bytes, tag: str) -> bytes:
    """Give every UUID in a capture a new first group (two captures never share ids)."""
    return re.sub(rb"\b([0-9a-f]{8})(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b",
                  lambda m: tag.encode() + m.group(1)[len(tag):] + m.group(2), data)


def test_two_captures_interleaved_give_the_union() -> None:
    a = capture_event_frames((FREESWITCH_TRACES / "ringgroup-answered.esl").read_bytes())
    b = capture_event_frames(_renumber(
        (FREESWITCH_TRACES / "voicemail-after-noanswer.esl").read_bytes(), "bb"))
    mixed = []
    rng = random.Random(7)
    ia = ib = 0
    while ia < len(a) or ib < len(b):
        if ib >= len(b) or (ia < len(a) and rng.random() < 0.5):
            mixed.append(a[ia])
            ia += 1
        else:
            mixed.append(b[ib])
            ib += 1
    outs, _ = replay(b"".join(mixed))
    got = {o.caller: (o.verdict, o.reason, o.voicemail_left) for o in outs}
    assert got == {"+15552220005": ("answered", "answered", False),
                   "+15552220007": ("missed", "voicemail", True)}


def test_damaged_stream_still_decides_every_call() -> None:
    frames = capture_event_frames((FREESWITCH_TRACES / "concurrent-mixed.esl").read_bytes())
    junk = [b"\x00garbage\x1b\n\n", b"Content-Length: 9999999999\nContent-Type: x\n\n",
            b"Content-Length: 20\nContent-Type: text/event-json\n\n{not json at all!!!}"]
    out = []
    for i, f in enumerate(frames):
        out.append(f)
        if i % 25 == 3:
            out.append(junk[i % 3])
    outs, stream = replay(b"".join(out))
    assert _records(outs) == sorted(EXPECTED["concurrent-mixed.esl"], key=lambda r: str(r["call"]))
    assert sum(stream.stats.dropped.values()) >= 3


def test_capture_cut_mid_call_decides_what_it_has() -> None:
    data = (FREESWITCH_TRACES / "direct-answered.esl").read_bytes()
    outs, _stream = replay(data[: len(data) * 2 // 3])
    assert len(outs) == 1 and outs[0].verdict == "answered"


def test_not_an_esl_stream_is_a_clear_error(tmp_path: Path) -> None:
    s = FreeswitchStream()
    with pytest.raises(StreamError, match="no FreeSWITCH Event Socket frame"):
        for _ in range(40):
            s.feed(b"Asterisk Call Manager/9.0.0\r\nEvent: Newchannel\r\n" * 100)
