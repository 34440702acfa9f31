"""Inbound texts over AMI are taken only from the trunk's message context (issue 12, finding 5).

The shipped dialplan (dialplan/asterisk/extensions_textback.conf) raises
``UserEvent(TextbackMessage, …)`` in ``[textback-message-in]``, the trunk endpoint's
``message_context``. Any other dialplan context (a phone dialling a crafted extension), or
any AMI client with ``write = user`` (``Action: UserEvent``, which has no channel), could
raise the same event and plant a "reply" or a STOP for any number. Only an event raised on
a channel in the configured message context (``[trunks] asterisk_message_context``,
default ``textback-message-in``) is accepted; others are refused, counted and logged.

No capture holds a UserEvent (the lab had no inbound MESSAGE): the events below follow
Asterisk's UserEvent layout (``Event``, ``Privilege: user,all``, the raising channel's
snapshot, ``UserEvent: <name>``, then the given headers), the snapshot's header order and
values copied from the real Newexten events of direct-noanswer.ami, with the message
channel's name and context put in.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import ASTERISK_TRACES
from tests.daemon_fakes import CALLER, DID, Clock, make_config, opened
from textback.inbound.handler import InboundHandler
from textback.outbound.outbox import Outbox
from textback.pbx.asterisk.client import AmiClient
from textback.pbx.link import TextReceived


def user_event(body: str, *, context: str | None, sender: str = CALLER) -> bytes:
    quote = urllib.parse.quote
    lines = ["Event: UserEvent", "Privilege: user,all"]
    if context is not None:  # raised by the dialplan on a channel (its snapshot)
        lines += ["Channel: Message/ast_msg_queue", "ChannelState: 6",
                  "ChannelStateDesc: Up", f"CallerIDNum: {sender}", "CallerIDName: ",
                  "ConnectedLineNum: <unknown>", "ConnectedLineName: <unknown>",
                  "Language: en", "AccountCode: ", f"Context: {context}", f"Exten: {DID}",
                  "Priority: 2", "Uniqueid: 1795395200.7", "Linkedid: 1795395200.7"]
    lines += [
        "UserEvent: TextbackMessage",
        f"From: {quote(f'<sip:{sender}@127.0.0.1:5170>', safe='')}",
        f"To: {quote(f'<sip:{DID}@127.0.0.1>', safe='')}",
        f"Exten: {quote(DID, safe='')}",
        f"Body: {base64.b64encode(body.encode()).decode()}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _feed(tmp_path: Path, *events: bytes) -> tuple[AmiClient, list[str]]:
    """The bytes through the Asterisk link (configured as the daemon configures it), and
    every text it reports through the inbound handler, as the daemon does."""
    config = make_config(tmp_path)
    link = AmiClient("127.0.0.1", 5038, "textback", "x", config.trunks.tracker_config(),
                     message_context=config.trunks.asterisk_message_context)
    banner = (ASTERISK_TRACES / "banner-only.ami").read_bytes()
    link.stream.receive_data(banner + b"".join(events), 1_800_000_000.0)
    link._drain()
    async with opened(tmp_path) as store:
        inbound = InboundHandler(store, Outbox(store, config=config), config, clock=Clock())
        for event in link.drain():
            assert isinstance(event, TextReceived)
            await inbound.receive(number=event.number, text=event.body, did=event.did,
                                  via="sip", at=1_800_000_000.0)
        rows = await store.fetchall("SELECT body FROM messages ORDER BY id")
    return link, [r["body"] for r in rows]


async def test_user_event_from_the_message_context_is_taken(tmp_path: Path) -> None:
    link, bodies = await _feed(tmp_path, user_event("yes please call",
                                                    context="textback-message-in"))
    assert bodies == ["yes please call"] and link.refused["user_event"] == 0


@pytest.mark.parametrize("context", ["from-internal", "from-trunk", "", None],
                         ids=["phone-context", "call-context", "empty", "ami-action"])
async def test_forged_user_event_is_ignored_and_counted(
        tmp_path: Path, context: str | None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    link, bodies = await _feed(
        tmp_path,
        user_event("STOP", context=context),
        user_event("genuine reply", context="textback-message-in"))
    assert bodies == ["genuine reply"]
    assert link.refused["user_event"] == 1
    refused = [r for r in caplog.records if "user_event_refused" in r.getMessage()]
    assert refused and refused[0].levelno == logging.WARNING
    assert "STOP" not in refused[0].getMessage()  # the forged text is not echoed


def test_message_context_is_configurable(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert config.trunks.asterisk_message_context == "textback-message-in"
