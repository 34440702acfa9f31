"""ESL parser on the real FreeSWITCH captures: any chunking, split UTF-8, bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.conftest import FREESWITCH_TRACES
from textback.pbx.freeswitch.parser import (
    CT_API,
    CT_JSON,
    CT_PLAIN,
    EslParser,
    decode_event,
    iter_frames,
    peek_event_name,
)

CAPTURES = sorted(FREESWITCH_TRACES.glob("*.esl"))


def _parse_chunked(data: bytes, sizes: list[int]) -> tuple[list[tuple[str, bytes]], dict[str, int]]:
    p = EslParser()
    out = []
    i = 0
    k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        k += 1
        p.feed(data[i:i + n])
        i += n
        while (f := p.next_frame()) is not None:
            out.append((f.content_type, f.body))
    out.extend((f.content_type, f.body) for f in p.finish())
    return out, p.stats.dropped


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_any_chunking_gives_the_single_chunk_parse(path: Path) -> None:
    data = path.read_bytes()
    whole, dropped = _parse_chunked(data, [len(data)])
    assert dropped == {}
    assert whole and whole[0][0] == "auth/request"
    rng = random.Random(path.name)
    for sizes in ([rng.randint(1, 9000) for _ in range(50)], [4096], [65536]):
        assert _parse_chunked(data, sizes) == (whole, {})
    # byte-sized reads are quadratic in a frame's size: a prefix is enough to prove them
    head = data[:12000]
    assert _parse_chunked(head, [1, 2, 3]) == _parse_chunked(head, [len(head)])


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_event_decodes_with_its_name(path: Path) -> None:
    for f in iter_frames(path.read_bytes()):
        if f.is_event:
            ev = decode_event(f)
            assert ev is not None
            assert peek_event_name(f) == ev.name


def test_plain_values_are_url_decoded_and_json_matches_plain() -> None:
    frames = iter_frames((FREESWITCH_TRACES / "direct-noanswer.esl").read_bytes())
    ev = next(decode_event(f) for f in frames if f.content_type == CT_PLAIN)
    assert ev is not None
    assert ev.get("Caller-Caller-ID-Number") in (None, "+15552220001")
    hang = [decode_event(f) for f in frames if peek_event_name(f) == "CHANNEL_HANGUP_COMPLETE"]
    a = next(e for e in hang if e and e.get("Unique-ID", "").startswith("94ef8245"))
    assert a.get("Channel-Name") == "sofia/external/+15552220001@127.0.0.1"
    assert a.get("variable_originate_disposition") == "NO_ANSWER"
    jframes = iter_frames((FREESWITCH_TRACES / "direct-noanswer.json.esl").read_bytes())
    j = [decode_event(f) for f in jframes if f.content_type == CT_JSON]
    ja = next(e for e in j if e and e.name == "CHANNEL_HANGUP_COMPLETE"
              and e.get("Call-Direction") == "inbound")
    assert ja.get("variable_originate_disposition") == "NO_ANSWER"
    assert ja.get("Channel-Name") == "sofia/external/+15552220101@127.0.0.1"


def test_inner_body_without_trailing_newline_and_api_response() -> None:
    """chat-send.esl: api/response 'Sent' and MESSAGE/SMS events with their own bodies."""
    frames = iter_frames((FREESWITCH_TRACES / "chat-send.esl").read_bytes())
    api = [f for f in frames if f.content_type == CT_API]
    assert [f.text for f in api] == ["Sent"]
    events = [decode_event(f) for f in frames if f.is_event]
    msg = next(e for e in events if e and e.name == "MESSAGE")
    assert msg.body == "Sorry we missed your call. We will call you back shortly. - Example Co"
    assert msg.get("Delivery-Result-Code") == "202"
    sms = [e for e in events if e and e.subclass == "SMS::SEND_MESSAGE"]
    assert len(sms) == 2 and all(e.body.endswith("+15559870000.") for e in sms)
    assert frames[-1].content_type == "text/disconnect-notice"


def _message_frame(body_text: str) -> bytes:
    """A MESSAGE event shaped exactly like the one in chat-send.esl, with another body."""
    frames = iter_frames((FREESWITCH_TRACES / "chat-send.esl").read_bytes())
    src = next(f for f in frames if peek_event_name(f) == "MESSAGE")
    head = src.body.split(b"\nContent-Length: ")[0]
    payload = body_text.encode("utf-8")
    inner = head + b"\nContent-Length: %d\n\n" % len(payload) + payload
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def test_utf8_split_across_reads_survives() -> None:
    text = "Rückruf bitte 😀 – merci"
    frame = _message_frame(text)
    cut = frame.index("😀".encode()) + 2  # in the middle of the emoji
    p = EslParser()
    p.feed(frame[:cut])
    assert p.next_frame() is None
    p.feed(frame[cut:])
    f = p.next_frame()
    assert f is not None
    ev = decode_event(f)
    assert ev is not None and ev.body == text


def _capture_events(name: str) -> list[bytes]:
    from textback.testing.fake_esl import capture_event_frames

    return capture_event_frames((FREESWITCH_TRACES / name).read_bytes())


def test_event_cut_in_the_middle_is_dropped_and_the_stream_goes_on() -> None:
    frames = _capture_events("direct-busy.esl")
    cut = frames[5][: len(frames[5]) // 2]
    data = b"".join(frames[:5]) + cut + b"".join(frames[6:])
    got = iter_frames(data)
    p = EslParser()
    p.feed(data)
    n = 0
    while p.next_frame() is not None:
        n += 1
    assert n == len(frames) - 1 == len(got)
    assert sum(p.stats.dropped.values()) >= 1


@pytest.mark.parametrize("delta", [-40, +40, +5000])
def test_wrong_content_length_on_plain_is_repaired(delta: int) -> None:
    frames = _capture_events("direct-busy.esl")
    victim = frames[3]
    _head, body = victim.split(b"\n\n", 1)
    bad = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % (len(body) + delta) + body
    data = b"".join(frames[:3]) + bad + b"".join(frames[4:])
    p = EslParser()
    p.feed(data)
    names = []
    while (f := p.next_frame()) is not None:
        names.append(peek_event_name(f))
    names += [peek_event_name(f) for f in p.finish()]
    assert len(names) == len(frames)
    assert p.stats.dropped.get("content-length-mismatch") == 1


def test_bad_json_and_wrong_json_length_are_counted_and_skipped() -> None:
    frames = _capture_events("direct-noanswer.json.esl")
    body = b'{"Event-Name":"CHANNEL_CREATE","Unique-ID":'  # JSON that does not parse
    broken = b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(body) + body
    _head, jbody = frames[2].split(b"\n\n", 1)
    too_long = b"Content-Length: %d\nContent-Type: text/event-json\n\n" % (len(jbody) + 30) + jbody
    data = frames[0] + broken + frames[1] + too_long + b"".join(frames[3:])
    p = EslParser()
    p.feed(data)
    good = []
    while (f := p.next_frame()) is not None:
        good.append(f)
    good += p.finish()
    assert all(decode_event(f) is not None for f in good)
    assert len(good) == len(frames)
    assert p.stats.dropped.get("bad-json") == 1
    assert json.loads(good[2].body)["Event-Name"] == decode_event(good[2]).name  # type: ignore[union-attr]


def test_garbage_and_unknown_event_names_do_not_stop_the_stream() -> None:
    frames = _capture_events("direct-busy.esl")
    unknown = frames[1].replace(b"Event-Name: CHANNEL_CREATE", b"Event-Name: NO_SUCH_EVENTX")
    data = b"\x00\x1b[2Jgarbage line\nmore: junk here\n\n" + frames[0] + b"\xff\xfe\n\n" + \
        unknown + b"".join(frames[1:])
    p = EslParser()
    p.feed(data)
    out = []
    while (f := p.next_frame()) is not None:
        out.append(f)
    assert len(out) == len(frames) + 1
    assert p.stats.dropped.get("garbage", 0) >= 2


def test_truncated_at_end_is_counted() -> None:
    frames = _capture_events("direct-busy.esl")
    p = EslParser()
    p.feed(frames[0] + frames[1][:100])
    assert p.next_frame() is not None
    assert p.next_frame() is None
    assert p.finish() == []
    assert p.stats.dropped == {"truncated-at-end": 1}
