"""ESL chat sender: the command line it builds, and a send through the fake FreeSWITCH."""

from __future__ import annotations

import asyncio

import pytest

from textback.pbx.freeswitch.chat import chat_command, clean_chat_text, send_chat
from textback.pbx.freeswitch.client import EslClient
from textback.testing.fake_esl import FakeEslServer

FROM = "+15559870000@127.0.0.1"
TO = "external/sip:+15552220001@127.0.0.1:5076"
TEXT = "Sorry we missed your call. We will call you back shortly. - Example Co"


def test_command_matches_the_capture() -> None:
    # chat-send.esl: API-Command-Argument of the api that answered "Sent"
    assert chat_command(from_uri=FROM, to_uri=TO, text=TEXT) == (
        "chat sip|+15559870000@127.0.0.1|external/sip:+15552220001@127.0.0.1:5076|"
        "Sorry we missed your call. We will call you back shortly. - Example Co|text/plain")


@pytest.mark.parametrize("text", [
    "a|b", "line1\nline2", "x\r\n\r\nauth ClueCon\n\n", "ctrl\x1a\x1b[2J\x00z", "\x85nel|",
])
def test_text_can_never_break_the_command(text: str) -> None:
    cmd = chat_command(from_uri=FROM, to_uri=TO, text=text)
    assert cmd.count("|") == 4
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in cmd)


def test_cleaning_keeps_the_message_readable() -> None:
    assert clean_chat_text("Hi | there\nCall 555 😀") == "Hi \u00a6 there Call 555 😀"


@pytest.mark.parametrize("uri", ["", "a|b@x", "a b@x", "a\n@x"])
def test_bad_uris_are_rejected(uri: str) -> None:
    with pytest.raises(ValueError):
        chat_command(from_uri=uri, to_uri=TO, text="hi")
    with pytest.raises(ValueError):
        chat_command(from_uri=FROM, to_uri=uri, text="hi")


def test_empty_text_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        chat_command(from_uri=FROM, to_uri=TO, text="\n\x00 ")


async def test_send_through_fake_freeswitch() -> None:
    sent: list[str] = []

    def handler(cmd: str) -> str | None:
        if cmd.startswith("chat "):
            sent.append(cmd)
            # chat-send.esl: api/response body "Sent" (no trailing newline); a refused
            # destination answers an error line instead
            return "Sent" if "+15552220001" in cmd else "Error! Message Not Sent"
        return None

    async with FakeEslServer([], api_handler=handler) as srv:
        client = EslClient("127.0.0.1", srv.port, "ClueCon")
        task = asyncio.create_task(client.run())
        await asyncio.wait_for(client.connected.wait(), 5)
        ok = await send_chat(client, from_uri=FROM, to_uri=TO, text=TEXT)
        bad = await send_chat(client, from_uri=FROM, to_uri=TO.replace("0001", "0999"),
                              text="x|y")
        client.stop()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ok.sent and ok.reply == "Sent" and ok.text_sent == TEXT
    assert not bad.sent and bad.text_sent == "x\u00a6y"
    assert sent[0].endswith("|text/plain")
