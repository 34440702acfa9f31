"""ModemSender: how the modem stack's errors map onto the outbox's roads.

The supervisor is replaced by a double that raises what ModemDriver raises (the real
exception classes, built the way driver.py builds them), because the mapping, not the modem,
is under test here; the real modem path runs in test_dispatcher.py and the reliability suite.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from textback.modem.driver import PartResult, SendFailed
from textback.modem.errors import ModemError, SubmitUnconfirmed
from textback.modem.pdu import PduError
from textback.modem.sender import ModemSender
from textback.sender import SendError


class RaisingSupervisor:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def available(self) -> bool:
        return True

    async def send(self, number: str, text: str, **_: Any) -> list[PartResult]:
        raise self.exc


def part(mr: int | None, k: int, total: int) -> PartResult:
    return PartResult(mr=mr, part=k, parts=total, number="+15551230001", tpdu_length=140,
                      sent_at=time.time())


def sender(exc: Exception) -> ModemSender:
    return ModemSender(RaisingSupervisor(exc), "modem:a")  # type: ignore[arg-type]


async def test_unanswered_single_part_is_sent_unconfirmed_and_says_so() -> None:
    cause = SubmitUnconfirmed(ModemError("no answer to the PDU in 120 s"))
    result = await sender(SendFailed(cause, [part(None, 1, 1)])).send("+15551230001", "hi")
    assert result.confirmed is False and result.refs == [None] and result.parts == 1
    assert result.detail.startswith("0 of 1 parts confirmed, 1 handed to the modem with no "
                                    "answer: ")


async def test_later_part_failing_keeps_what_went_and_never_retries() -> None:
    cause = ModemError("+CMS ERROR: 500")
    result = await sender(SendFailed(cause, [part(7, 1, 3), part(8, 2, 3)])).send(
        "+15551230001", "long")
    assert result.confirmed is False and result.refs == [7, 8] and result.parts == 3
    assert result.detail == "2 of 3 parts confirmed: +CMS ERROR: 500"


async def test_nothing_went_is_a_send_error_with_the_cause_s_transience() -> None:
    with pytest.raises(SendError) as exc:
        await sender(SendFailed(ModemError("+CMS ERROR: 500"), [])).send("+15551230001", "x")
    assert exc.value.permanent is False


async def test_an_unaddressable_number_is_permanent() -> None:
    with pytest.raises(SendError) as exc:
        await sender(PduError("bad digits")).send("+1555x", "x")
    assert exc.value.permanent is True and "cannot address" in exc.value.reason
