"""AmiParser on the real Asterisk 22 captures: framing, chunking, UTF-8, bad input."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.conftest import ASTERISK_TRACES
from textback.pbx.asterisk.parser import AmiMessage, AmiParser

CAPTURES = sorted(ASTERISK_TRACES.glob("*.ami"))


def parse_all(data: bytes, sizes: list[int] | None = None) -> tuple[list[AmiMessage], AmiParser]:
    p = AmiParser()
    out: list[AmiMessage] = []
    if sizes is None:
        out += p.feed(data)
    else:
        i = 0
        for n in sizes:
            out += p.feed(data[i:i + n])
            i += n
        out += p.feed(data[i:])
    p.finish()
    return out, p


def test_captures_are_present() -> None:
    assert len(CAPTURES) >= 20


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_parses_cleanly(path: Path) -> None:
    data = path.read_bytes()
    msgs, p = parse_all(data)
    assert p.dropped == {}
    assert msgs[0].kind == "banner" and msgs[0].name == "Asterisk Call Manager/11.0.0"
    # every block of the file is one message (banner line + blocks ending in a blank line)
    assert len(msgs) == 1 + data.count(b"\r\n\r\n")
    assert all(m.kind in ("event", "response") for m in msgs[1:])
    assert p.offset == len(data)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_any_chunking_gives_the_single_chunk_parse(path: Path) -> None:
    data = path.read_bytes()
    whole, _ = parse_all(data)
    rng = random.Random(path.name)
    for _ in range(4):
        sizes = [rng.choice((1, 2, 3, 7, 64, 500, 4096)) for _ in range(len(data) // 50 + 1)]
        chunked, p = parse_all(data, sizes)
        assert chunked == whole
        assert p.dropped == {}


def test_headers_and_lazy_get_agree() -> None:
    msgs, _ = parse_all((ASTERISK_TRACES / "direct-noanswer.ami").read_bytes())
    nc = next(m for m in msgs if m.name == "Newchannel")
    assert nc.get("Channel") == "PJSIP/trunk-00000000"
    assert nc["Linkedid"] == "1795395183.0"
    assert nc.get("AccountCode") == ""  # "AccountCode: " (empty value)
    assert nc.get("Nope") is None and "Nope" not in nc
    h = nc.headers()
    assert h["CallerIDName"] == "John Smith" and h["Exten"] == "+15559870000"
    for key, value in h.items():
        assert nc.get(key) == value


def test_login_failure_response() -> None:
    msgs, _ = parse_all((ASTERISK_TRACES / "login-failure.ami").read_bytes())
    assert [m.kind for m in msgs] == ["banner", "response"]
    assert msgs[1].name == "Error" and msgs[1]["Message"] == "Authentication failed"


def test_messagesend_action_ids() -> None:
    msgs, _ = parse_all((ASTERISK_TRACES / "messagesend.ami").read_bytes())
    ids = [m.action_id for m in msgs if m.kind == "response" and m.action_id]
    assert ids == [f"textback-msg-{i}" for i in range(1, 7)]


def test_lf_only_stream_equals_crlf() -> None:
    data = (ASTERISK_TRACES / "queue-answered.ami").read_bytes()
    crlf, _ = parse_all(data)
    lf, p = parse_all(data.replace(b"\r\n", b"\n"), [5, 9, 1000, 3] * 200)
    assert lf == crlf and p.dropped == {}


def test_utf8_split_across_reads_survives() -> None:
    ev = "Event: UserEvent\r\nCallerIDName: Désolé 😀\r\n\r\n".encode()
    cut = ev.index("😀".encode()) + 2  # in the middle of the 4-byte emoji
    p = AmiParser()
    assert p.feed(ev[:cut]) == []
    (msg,) = p.feed(ev[cut:])
    assert msg["CallerIDName"] == "Désolé 😀"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    p = AmiParser()
    (msg,) = p.feed(b"Event: X\r\nName: a\xff\xfeb\r\n\r\n")
    assert msg["Name"] == "a\ufffd\ufffdb"


def test_follows_command_output_with_blank_lines() -> None:
    data = (b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
            b"line one\n\nline three after a blank line\n--END COMMAND--\r\n\r\n"
            b"Event: Next\r\nA: b\r\n\r\n")
    for sizes in (None, [1] * len(data), [20, 40, 7]):
        msgs, p = parse_all(data, sizes)
        assert [m.name for m in msgs] == ["Follows", "Next"], sizes
        assert msgs[0].action_id == "c1"
        assert msgs[0]["Output"] == "line one\n\nline three after a blank line"
        assert p.dropped == {}


def test_repeated_headers_are_kept() -> None:
    p = AmiParser()
    (msg,) = p.feed(b"Response: Success\r\nOutput: a\r\nOutput: b\r\n\r\n")
    assert msg.get("Output") == "a"
    assert msg.headers()["Output"] == "a\nb"


def test_one_megabyte_line_is_dropped_and_the_stream_resyncs() -> None:
    good = (ASTERISK_TRACES / "direct-busy.ami").read_bytes()
    whole, _ = parse_all(good)
    garbage = b"\x00\x1b[2J" + b"x" * (1024 * 1024) + b"\r\n\r\n"
    p = AmiParser(max_message=64 * 1024)
    out: list[AmiMessage] = []
    stream = garbage + good
    peak = 0
    for i in range(0, len(stream), 4096):
        out += p.feed(stream[i:i + 4096])
        peak = max(peak, p.buffered)
    p.finish()
    assert peak <= 64 * 1024 + 4096
    assert p.dropped["oversize-message"] == 1
    assert p.dropped["oversize-bytes"] >= 1024 * 1024
    assert out == whole  # the banner after the garbage is recognised too


def test_garbage_lines_inside_a_message_are_counted() -> None:
    p = AmiParser()
    msgs = p.feed(b"Event: Hangup\r\nUniqueid: 1.1\r\n\x1a\x1b garbage line\r\n\r\n"
                  b"no headers at all\r\n\r\nEvent: Ok\r\n\r\n")
    assert [m.name for m in msgs] == ["Hangup", "Ok"]
    assert msgs[0]["Uniqueid"] == "1.1"
    assert msgs[0].headers() == {"Event": "Hangup", "Uniqueid": "1.1"}  # junk line ignored
    assert p.dropped == {"bad-line": 1, "not-a-message": 1}  # the header-less block


def test_truncated_last_message_is_counted() -> None:
    p = AmiParser()
    assert p.feed(b"Event: Hangup\r\nUniqueid: 1.1\r\n") == []
    p.finish()
    assert p.dropped == {"truncated": 1}
