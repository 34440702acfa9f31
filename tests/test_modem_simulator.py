"""The simulator's own contract: DELIVER / STATUS-REPORT PDUs decode, dialect bytes are right."""

from __future__ import annotations

import os

import pytest

from textback.modem.pdu import decode_pdu
from textback.modem.simulator import PROFILES, ModemSimulator
from textback.modem.simulator.deliver import encode_deliver, encode_status_report


@pytest.mark.parametrize("text", ["hello", "€[]{}" * 40, "😀 emoji " * 30, "é" * 71])
def test_deliver_pdus_decode(text: str) -> None:
    pdus = encode_deliver("+447700900555", text)
    decoded = [decode_pdu(p) for p, _ in pdus]
    assert "".join(d.text or "" for d in decoded) == text
    assert all(d.direction == "deliver" and d.number == "+447700900555" for d in decoded)
    assert [d.tpdu_length for d in decoded] == [n for _, n in pdus]
    if len(pdus) > 1:
        assert [d.udh.part for d in decoded if d.udh] == list(range(1, len(pdus) + 1))


def test_status_report_decodes() -> None:
    pdu, _ = encode_status_report("+447700900123", 77, status=0)
    d = decode_pdu(pdu)
    assert d.direction == "status" and d.message_reference == 77 and d.status == 0


@pytest.mark.parametrize(("profile", "prompt"), [("sim7670", b"\r\n>\r\n"), ("e3372", b"\r\n> ")])
async def test_prompt_bytes_per_dialect(profile: str, prompt: bytes) -> None:
    async with ModemSimulator(profile) as sim:
        fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
        try:
            import asyncio
            os.write(fd, b"ATE0\rAT+CMGS=5\r")
            await asyncio.sleep(0.1)
            data = os.read(fd, 4096)
            assert data.endswith(prompt)
            os.write(fd, b"\x1b")
        finally:
            os.close(fd)


async def test_sim800l_refuses_ds2() -> None:
    assert PROFILES["sim800l"].cnmi_ds_max == 1
    async with ModemSimulator("sim800l") as sim:
        sim.engine.feed(b"ATE0\rAT+CNMI=2,1,0,2,0\r")
        out = b"".join(d for _, d in sim.engine.take_output())
        assert out.endswith(b"ERROR\r\n")
