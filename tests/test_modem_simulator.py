"""The simulator's own contract: DELIVER / STATUS-REPORT PDUs decode, dialect bytes are right."""

from __future__ import annotations

import os

import pytest

from textback.modem.pdu import decode_pdu
from textback.testing.modem_simulator import PROFILES, ModemSimulator
from textback.testing.modem_simulator.deliver import encode_deliver, encode_status_report


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


def _answers(sim: ModemSimulator, commands: bytes) -> bytes:
    sim.engine.feed(commands)
    return b"".join(d for _, d in sim.engine.take_output())


async def test_sim_removed_answers_per_27007_and_27005_then_asks_its_pin_again() -> None:
    async with ModemSimulator("sim800l", pin="4321") as sim:
        _answers(sim, b'ATE0\rAT+CMEE=1\rAT+CPIN="4321"\r')
        sim.remove_sim()
        out = b"".join(d for _, d in sim.engine.take_output())
        assert out == b""  # the URC went to the pty already
        assert _answers(sim, b"AT+CPIN?\r").endswith(b"+CME ERROR: 10\r\n")
        assert _answers(sim, b"AT+CMGS=20\r").endswith(b"+CMS ERROR: 310\r\n")
        assert _answers(sim, b"AT+CPMS?\r").startswith(b"\r\n+CPMS")  # ME state: fine
        assert _answers(sim, b"AT+CMGL=4\r").endswith(b"+CMS ERROR: 310\r\n")
        assert b"+CREG: 0,0" in _answers(sim, b"AT+CREG?\r")
        assert _answers(sim, b'AT+CPIN="4321"\r').endswith(b"+CME ERROR: 10\r\n")
        sim.insert_sim()
        assert b"+CPIN: SIM PIN" in _answers(sim, b"AT+CPIN?\r")
        assert b"+CREG: 0,0" in _answers(sim, b"AT+CREG?\r")
        out = _answers(sim, b'AT+CPIN="4321"\r')
        assert b"OK" in out and b"+CPIN: READY" in out and b"SMS Ready" in out
        assert b"+CREG: 0,1" in _answers(sim, b"AT+CREG?\r")


@pytest.mark.parametrize(("profile", "removed", "inserted"), [
    ("sim800l", b"+CPIN: NOT READY", b"+CPIN: READY"),
    ("ec25", b"+CPIN: NOT INSERTED", b"+CPIN: READY"),
    ("generic", None, None),
])
def test_sim_urcs_per_dialect(profile: str, removed: bytes | None,
                              inserted: bytes | None) -> None:
    from textback.testing.modem_simulator.engine import ModemEngine

    engine = ModemEngine(PROFILES[profile])
    engine.remove_sim()
    out = b"".join(d for _, d in engine.take_output())
    assert (removed in out) if removed else out == b""
    engine.insert_sim()
    out = b"".join(d for _, d in engine.take_output())
    assert (inserted in out) if inserted else out == b""


def test_a_stalled_pdu_is_taken_but_answered_late_or_never() -> None:
    from textback.testing.modem_simulator.engine import ModemEngine

    engine = ModemEngine(PROFILES["generic"])
    engine.feed(b"ATE0\r")
    engine.submit_stalls.extend([4.0, None])
    pdu = "0011000B914477009001F30000AA0568656C6C6F"
    for _ in range(2):
        engine.feed(b"AT+CMGS=19\r" + pdu.encode() + b"\x1a")
    assert len(engine.accepted) == 2
    assert b"+CMGS" not in b"".join(d for _, d in engine.take_output())
    assert engine.take_late() == [(4.0, b"\r\n+CMGS: 0\r\n\r\nOK\r\n")]
    engine.feed(b"\x1bAT\r")  # ESC outside a prompt is ignored
    assert b"".join(d for _, d in engine.take_output()).endswith(b"OK\r\n")
