"""AMI MessageSend sender, against responses taken from the real messagesend.ami capture."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ASTERISK_TRACES
from textback.pbx.asterisk.message_send import AmiMessageSender
from textback.sender import SendError


def captured_responses() -> dict[str, dict[str, str]]:
    """ActionID -> Response block, parsed from the capture (no parser dependency)."""
    raw = (ASTERISK_TRACES / "messagesend.ami").read_bytes().decode()
    out: dict[str, dict[str, str]] = {}
    for block in raw.split("\r\n\r\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "ActionID" in fields:
            out[fields["ActionID"]] = fields
    return out


class FakeAmi:
    """Answers each MessageSend with the response the real Asterisk gave for that case."""

    def __init__(self, answer: dict[str, str]) -> None:
        self.answer = answer
        self.actions: list[dict[str, str]] = []

    async def __call__(self, action: dict[str, str]) -> dict[str, Any]:
        self.actions.append(action)
        return self.answer


RESPONSES = captured_responses()


async def test_success_is_sent_but_unconfirmed() -> None:
    ami = FakeAmi(RESPONSES["textback-msg-4"])  # nobody listening, still Success
    sender = AmiMessageSender(ami, destination="pjsip:trunk/sip:{number}@127.0.0.1:5180",
                              from_uri="sip:+15559870000@127.0.0.1")
    result = await sender.send("+15551230001", "Désolé 😀 we missed your call")
    assert result.confirmed is False and result.parts == 1
    action = ami.actions[0]
    assert action["Destination"] == "pjsip:trunk/sip:+15551230001@127.0.0.1:5180"
    # The capture's msg-3 shows Base64Body reaches the phone byte-identical to raw UTF-8.
    assert base64.b64decode(action["Base64Body"]).decode() == "Désolé 😀 we missed your call"
    sent = (Path(ASTERISK_TRACES) / "messagesend.ami.sent").read_text()
    assert "Base64Body: " + action["Base64Body"] in sent


@pytest.mark.parametrize("action_id", ["textback-msg-5", "textback-msg-6"])
async def test_errors_are_permanent(action_id: str) -> None:
    sender = AmiMessageSender(FakeAmi(RESPONSES[action_id]),
                              destination="pjsip:no-such-endpoint/{number}", from_uri="x")
    with pytest.raises(SendError) as info:
        await sender.send("+15551230001", "hi")
    assert info.value.permanent
    assert RESPONSES[action_id]["Message"] in str(info.value)


async def test_hostile_number_never_reaches_ami() -> None:
    ami = FakeAmi(RESPONSES["textback-msg-1"])
    sender = AmiMessageSender(ami, destination="pjsip:trunk/sip:{number}@h", from_uri="x")
    for bad in ["+1555\r\nAction: Originate", "+1555;x", "15551230001", "+1" + "5" * 20]:
        with pytest.raises(SendError):
            await sender.send(bad, "hi")
    assert ami.actions == []


async def test_text_with_line_breaks_cannot_end_the_action() -> None:
    ami = FakeAmi(RESPONSES["textback-msg-1"])
    sender = AmiMessageSender(ami, destination="pjsip:trunk/sip:{number}@h", from_uri="x")
    await sender.send("+15551230001", "line1\r\n\r\nAction: Originate\r\n")
    assert all("\n" not in v and "\r" not in v for v in ami.actions[0].values())


async def test_link_down_is_transient() -> None:
    async def broken(action: dict[str, str]) -> dict[str, Any]:
        raise ConnectionResetError("AMI connection lost")

    sender = AmiMessageSender(broken, destination="pjsip:trunk/sip:{number}@h", from_uri="x")
    with pytest.raises(SendError) as info:
        await sender.send("+15551230001", "hi")
    assert not info.value.permanent
