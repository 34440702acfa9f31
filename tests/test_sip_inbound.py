"""Inbound SIP MESSAGE events: our own chat echo from the real capture is never a reply."""

from __future__ import annotations

from tests.conftest import FREESWITCH_TRACES
from textback.pbx.freeswitch.inbound_message import inbound_from_esl
from textback.pbx.freeswitch.parser import EslEvent, EslParser, decode_event


def message_events() -> list[EslEvent]:
    parser = EslParser()
    parser.feed((FREESWITCH_TRACES / "chat-send.esl").read_bytes())
    events = []
    while (frame := parser.next_frame(final=True)) is not None:
        event = decode_event(frame)
        if event is not None and event.name == "MESSAGE":
            events.append(event)
    assert events, "chat-send.esl holds the MESSAGE echo of our own chat api call"
    return events


def test_our_own_chat_echo_is_not_a_reply() -> None:
    for event in message_events():
        assert inbound_from_esl(event) is None


def test_a_received_text_is_one() -> None:
    # Built from the capture's echo with the fields mod_sofia sets on a received MESSAGE
    # (proto sip, from_user, to_user; no delivery result): no capture of an inbound text.
    echo = message_events()[0]
    headers = {k: echo.get(k) or "" for k in echo.headers
               if k not in ("Delivery-Result-Code", "Delivery-Failure", "blocking",
                            "dest_proto", "skip_global_process")}
    headers.update({"proto": "sip", "from_user": "+15552220001", "to_user": "+15559870000",
                    "from": "+15552220001@127.0.0.1"})
    received = EslEvent(name="MESSAGE", headers=headers, body="STOP")
    got = inbound_from_esl(received)
    assert got is not None
    assert (got.number, got.did, got.body) == ("+15552220001", "+15559870000", "STOP")
