"""ModemSender: how the modem stack's errors map onto the outbox's roads.

The supervisor is replaced by a double that raises what ModemDriver raises (the real
exception classes, built the way driver.py builds them), because the mapping, not the modem,
is under test here; the real modem path runs in test_dispatcher.py and the reliability suite,
and, for what happens after the Ctrl-Z (issue 12), at the end of this file.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_fakes import DID, NOW, Clock, lab_gate, opened
from textback.modem.driver import PartResult, SendFailed
from textback.modem.errors import ModemError, SubmitUnconfirmed
from textback.modem.pdu import PduError
from textback.modem.sender import ModemSender
from textback.modem.supervisor import READY, ModemSupervisor
from textback.outbound.dispatcher import Dispatcher
from textback.outbound.outbox import Outbox
from textback.sender import SendError
from textback.testing.modem_simulator import ModemSimulator
from textback.testing.modem_simulator.host import NOISE


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


# ---------------------------------------------------------------- after the Ctrl-Z (issue 12)
# Here the whole road is real: a simulated modem under a real ModemSupervisor, the real
# ModemSender, Dispatcher and Outbox on a real store; only the clock is the test's. The
# simulator counts the copies the network took.


@pytest.mark.parametrize(("fault", "status"), [
    ("stray-ok", "sent"),                  # noise, then the real +CMGS: matched
    ("garbage-then-ok", "sent"),
    ("bare-error", "sent"),                # the late +CMGS lands while resynchronising
    ("stray-ok/never", "sent-unconfirmed"),  # noise and no real answer
    ("garbage-then-ok/never", "sent-unconfirmed"),
    ("bare-error/never", "sent-unconfirmed"),
    ("+CMS ERROR: 500/never", "sent-unconfirmed"),
    ("timeout", "sent-unconfirmed"),       # no answer at all within send_timeout
    ("port-lost", "sent-unconfirmed"),     # the port vanished after the Ctrl-Z
])
async def test_a_text_after_noise_timeout_or_port_loss_goes_on_the_air_once(
        tmp_path: Path, fault: str, status: str) -> None:
    noise, _, never = fault.partition("/")
    async with ModemSimulator("generic", link=tmp_path / "modem") as sim, \
            opened(tmp_path) as store:
        sup = ModemSupervisor(sim.port, name="a", poll_interval=0.05, health_interval=0.2,
                              command_timeout=0.5, send_timeout=1.0)
        sup.start()
        try:
            await sup.wait_state(READY, timeout=5)
            if noise in NOISE:
                sim.noise_after_pdu(NOISE[noise], count=4)
            elif noise.startswith("+CMS"):
                sim.noise_after_pdu(f"\r\n{noise}\r\n".encode(), count=4)
            if never or noise in ("timeout", "port-lost"):
                sim.stall_after_pdu(None, count=4)
            clock = Clock()
            outbox = Outbox(store, retry_base_s=30.0, config=lab_gate())
            d = Dispatcher(outbox, {"modem:a": ModemSender(sup, "modem:a")}, clock=clock)
            item = await outbox.enqueue(call_id="c1", kind="textback", number="+15551230001",
                                        did=DID, body="Sorry we missed your call",
                                        senders=("modem:a",), not_before=NOW, now=NOW)
            for _ in range(4):  # what the outbox would do over hours of retries
                await d.pump()
                if noise == "port-lost" and d.in_flight:
                    deadline = asyncio.get_running_loop().time() + 5
                    while not sim.accepted and asyncio.get_running_loop().time() < deadline:
                        await asyncio.sleep(0.01)
                    sim.disappear()
                while d._tasks:
                    await asyncio.wait(set(d._tasks))
                clock.t += 3600
                if sup.state != READY and noise != "port-lost":
                    await sup.wait_state(READY, timeout=5)
            assert len(sim.accepted) == 1, f"{len(sim.accepted)} copies on the air"
            row = await store.fetchone("SELECT state FROM outbox WHERE id = ?", (item.id,))
            msg = await store.fetchone("SELECT status FROM messages WHERE outbox_id = ?",
                                       (item.id,))
            assert row is not None and row["state"] == "sent", dict(row or {})
            assert msg is not None and msg["status"] == status
            if status == "sent":
                parts = await store.fetchall("SELECT mr FROM message_parts")
                assert [p["mr"] for p in parts] == [sim.accepted[0].mr]
        finally:
            await sup.stop()
