"""Inbound SIP texts on Asterisk: the dialplan's UserEvent(TextbackMessage) reaches the
inbound handler through the AMI stream.

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
from textback.pbx.asterisk.parser import AmiMessage
from textback.pbx.asterisk.stream import AsteriskStream


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
    stream = AsteriskStream()
    seen: list[AmiMessage] = []
    stream.on_user_event = seen.append
    assert stream.feed(banner + user_event("Stop texting me,\nplease 🙏")) == []
    assert len(seen) == 1 and seen[0].get("UserEvent") == "TextbackMessage"
    fields = {k: seen[0].get(k) or "" for k in ("From", "To", "Exten", "Body")}
    async with opened(tmp_path) as store:
        outbox = Outbox(store, config=lab_gate())
        handler = InboundHandler(store, outbox, make_config(tmp_path), clock=Clock())
        message_id = await handler.receive_ami_user_event(fields, NOW)
        assert message_id is not None
        row = await store.fetchone("SELECT number, did, body, sender FROM messages "
                                   "WHERE id = ?", (message_id,))
        assert row is not None
        assert (row["number"], row["did"], row["sender"]) == (CALLER, DID, "sip")
        assert row["body"] == "Stop texting me,\nplease 🙏"  # line break and emoji intact
        opted = await store.fetchone("SELECT opted_out FROM opt_outs WHERE number = ?",
                                     (CALLER,))
        assert opted is not None and opted["opted_out"] == 1


async def test_body_that_is_not_base64_is_kept_as_it_came(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        config = make_config(tmp_path)
        handler = InboundHandler(store, Outbox(store, config=config), config, clock=Clock())
        got = await handler.receive_ami_user_event(
            {"From": "sip%3A%2B15551230001%40h", "Exten": DID, "Body": "not base64!"}, NOW)
        assert got is not None
        row = await store.fetchone("SELECT body FROM messages WHERE id = ?", (got,))
        assert row is not None and row["body"] == "not base64!"
