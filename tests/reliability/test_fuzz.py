"""Fuzzing the protocol parsers with hypothesis: only the declared errors may escape.

AMI and ESL parsers never raise on bad bytes (they count drops); the AT session's
receive path never raises; decode_pdu raises only PduError. Examples mix real capture bytes
(mutated) with arbitrary bytes. Quick: 300 examples each; ``--soak``: 250,000 each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ASTERISK_TRACES, FREESWITCH_TRACES
from textback.modem.at_session import AtSession
from textback.modem.pdu import decode_pdu
from textback.modem.pdu_error import PduError
from textback.pbx.asterisk.parser import AmiParser
from textback.pbx.freeswitch.parser import EslParser

AMI = (ASTERISK_TRACES / "direct-noanswer.ami").read_bytes()[:6000]
ESL_FILES = sorted(FREESWITCH_TRACES.glob("*.esl*")) if FREESWITCH_TRACES.is_dir() else []
ESL = ESL_FILES[0].read_bytes()[:6000] if ESL_FILES else b"Content-Type: text/event-plain\n\n"
# a real SMS-DELIVER as a modem reports it in +CMGR (3GPP 23.040 example shape)
PDU = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"


def run(soak: bool, test: Callable[[], None]) -> None:
    """Run a @given test under the quick or the soak profile (chosen at run time, so the
    rest of the test session keeps hypothesis' defaults)."""
    settings(settings.get_profile("reliability-soak" if soak else "reliability-quick"))(
        test)()


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """The seed with a slice replaced by arbitrary bytes, or arbitrary bytes alone."""
    @st.composite
    def build(draw: Callable[..., Any]) -> bytes:
        i = draw(st.integers(0, len(seed)))
        j = draw(st.integers(i, min(len(seed), i + 64)))
        junk = draw(st.binary(max_size=64))
        return seed[:i] + junk + seed[j:]
    return st.one_of(build(), st.binary(max_size=512))


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@given(mutated(AMI), st.lists(st.integers(0, 10_000), max_size=8))
def _test_ami_parser_never_raises(data: bytes, cuts: list[int]) -> None:
    parser = AmiParser()
    for piece in chunks(data, cuts):
        for msg in parser.feed(piece):
            msg.as_dict() if hasattr(msg, "as_dict") else None


@given(mutated(ESL), st.lists(st.integers(0, 10_000), max_size=8))
def _test_esl_parser_never_raises(data: bytes, cuts: list[int]) -> None:
    parser = EslParser()
    for piece in chunks(data, cuts):
        parser.feed(piece)
        while parser.next_frame() is not None:
            pass
    parser.finish()


@given(st.lists(st.one_of(st.binary(max_size=64), st.sampled_from(
    [b"OK\r\n", b"> ", b"+CMS ERROR: 500\r\n", b"+CMGS: 7\r\n", b"\r\n+CMTI: \"SM\",3\r\n",
     b"ERROR\r\n", b"+CME ERROR: SIM not inserted\r\n", b"\x00\xff\x1a"])), max_size=20),
       st.booleans())
def _test_at_session_receive_never_raises(pieces: list[bytes], sending: bool) -> None:
    session = AtSession()
    session.command("AT+CMGS=23" if sending else "AT+CSQ")
    for piece in pieces:
        session.receive_data(piece)
        session.events()


@given(st.one_of(mutated(PDU.encode()).map(lambda b: b.decode("latin-1")),
                 st.text(alphabet="0123456789ABCDEFabcdef", max_size=400)),
       st.booleans())
def _test_decode_pdu_raises_only_pdu_error(pdu: str, has_smsc: bool) -> None:
    with contextlib.suppress(PduError):
        decode_pdu(pdu, has_smsc=has_smsc)


def test_ami_parser_never_raises(soak: bool) -> None:
    run(soak, _test_ami_parser_never_raises)


def test_esl_parser_never_raises(soak: bool) -> None:
    run(soak, _test_esl_parser_never_raises)


def test_at_session_receive_never_raises(soak: bool) -> None:
    run(soak, _test_at_session_receive_never_raises)


def test_decode_pdu_raises_only_pdu_error(soak: bool) -> None:
    run(soak, _test_decode_pdu_raises_only_pdu_error)


def test_esl_parser_short_garbage_block_at_the_end_terminates() -> None:
    """Found by the fuzzer: a header block without Content-Type within the last 24 bytes
    made _resync keep the read position where it was, and next_frame loop forever."""
    parser = EslParser()
    parser.feed(b"X\n\n")
    assert parser.next_frame() is None
    parser.feed(b"Content-Type: auth/request\n\n")
    frame = parser.next_frame()
    assert frame is not None and frame.content_type == "auth/request"
