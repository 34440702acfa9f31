"""Inbound SIP texts on Asterisk: the dialplan's UserEvent(TextbackMessage) comes out of the
Asterisk link as a ``TextReceived`` event, which the daemon hands to the inbound handler.

No capture holds a TextbackMessage UserEvent (the lab had no inbound MESSAGE), so the event
below is written by hand in the shape Asterisk's UserEvent application produces for the
line in dialplan/asterisk/extensions_textback.conf (Event: UserEvent, Privilege: user,all,
UserEvent: <name>, then the given headers), with a real capture's banner before it.
"""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path

from tests.conftest import ASTERISK_TRACES
from tests.daemon_fakes import CALLER, DID, NOW, Clock, lab_gate, make_config, opened
from textback.inbound.handler import InboundHandler
from textback.outbound.outbox import Outbox
from textback.pbx.asterisk.client import AmiClient
from textback.pbx.asterisk.inbound_message import text_from_user_event
from textback.pbx.asterisk.parser import AmiMessage
from textback.pbx.link import TextReceived


def link_events(raw: bytes, context: str | None = None) -> list[object]:
    """What the Asterisk link reports for ``raw`` bytes from the PBX (no socket)."""
    client = AmiClient("127.0.0.1", 5038, "textback", "x", message_context=context)
    client.stream.receive_data(raw, NOW)
    client._drain()
    return list(client.drain())


def user_event(body: str, sender: str = CALLER, exten: str = DID) -> bytes:
    quote = urllib.parse.quote
    lines = [
        "Event: UserEvent",
        "Privilege: user,all",
        "Channel: Message/ast_msg_queue",
        "UserEvent: TextbackMessage",
        f"From: {quote(f'<sip:{sender}@127.0.0.1:5170>', safe='')}",
        f"To: {quote(f'<sip:{exten}@127.0.0.1>', safe='')}",
        f"Exten: {quote(exten, safe='')}",
        f"Body: {base64.b64encode(body.encode()).decode()}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_user_event_becomes_a_stored_reply_and_stop_is_honoured(tmp_path: Path) -> None:
    banner = (ASTERISK_TRACES / "banner-only.ami").read_bytes()
    (text,) = link_events(banner + user_event("Stop texting me,\nplease 🙏"))
    assert isinstance(text, TextReceived)
    assert (text.number, text.did) == (CALLER, DID)
    async with opened(tmp_path) as store:
        outbox = Outbox(store, config=lab_gate())
        handler = InboundHandler(store, outbox, make_config(tmp_path), clock=Clock())
        message_id = await handler.receive(number=text.number, text=text.body, did=text.did,
                                           via="sip", at=NOW)
        assert message_id is not None
        row = await store.fetchone("SELECT number, did, body, sender FROM messages "
                                   "WHERE id = ?", (message_id,))
        assert row is not None
        assert (row["number"], row["did"], row["sender"]) == (CALLER, DID, "sip")
        assert row["body"] == "Stop texting me,\nplease 🙏"  # line break and emoji intact
        opted = await store.fetchone("SELECT opted_out FROM opt_outs WHERE number = ?",
                                     (CALLER,))
        assert opted is not None and opted["opted_out"] == 1


def test_body_that_is_not_base64_is_kept_as_it_came() -> None:
    msg = AmiMessage.from_headers({"Event": "UserEvent", "UserEvent": "TextbackMessage",
                                   "From": "sip%3A%2B15551230001%40h", "Exten": DID,
                                   "Body": "not base64!"})
    text = text_from_user_event(msg, None)
    assert text is not None and (text.number, text.body) == (CALLER, "not base64!")
