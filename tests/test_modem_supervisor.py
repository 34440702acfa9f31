"""Supervision on the simulator: replug behind the same link, hang and reset, two modems."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from textback.modem.driver import SendFailed
from textback.modem.supervisor import ABSENT, DEGRADED, LOST, READY, ModemSupervisor
from textback.testing.modem_simulator import ModemSimulator


def _sup(port: str, **kw: object) -> ModemSupervisor:
    return ModemSupervisor(port, poll_interval=0.05, health_interval=0.2, command_timeout=0.3,
                           **kw)  # type: ignore[arg-type]


async def test_absent_then_ready_then_unplug_replug(tmp_path: Path) -> None:
    link = tmp_path / "usb-SIMCOM_SIM800L-if00"
    sup = _sup(str(link))
    sup.start()
    try:
        assert await sup.wait_state(ABSENT, timeout=2) == ABSENT
        sim = await ModemSimulator("sim800l", link=link).start()
        await sup.wait_state(READY, timeout=5)
        first = sim.slave_path
        parts = await sup.send("+447700900123", "hello")
        assert len(parts) == 1 and len(sim.accepted) == 1
        sim.disappear()
        await sup.wait_state(LOST, timeout=5)
        assert not sup.available()
        sim.reappear()  # new pty behind the same link
        await sup.wait_state(READY, timeout=5)
        assert sup.reopens == 1 and sim.generation == 2
        await sup.send("+447700900123", "again")
        assert len(sim.accepted) == 2
        assert first  # the old name may be reused by the kernel; the link is what counts
        await sim.stop()
    finally:
        await sup.stop()


async def test_hung_modem_is_reset_and_recovers(tmp_path: Path) -> None:
    sim = await ModemSimulator("sim7600", link=tmp_path / "m").start()
    sup = _sup(sim.port)
    sup.start()
    try:
        await sup.wait_state(READY, timeout=5)
        sim.hang(1.2)
        await sup.wait_state(LOST, timeout=5)
        await sup.wait_state(READY, timeout=10)
        assert sup.resets >= 1
        h = sup.health()
        assert h.state == READY and h.info.model == "SIMCOM_SIM7600E-H"
    finally:
        await sup.stop()
        await sim.stop()


async def test_no_network_is_degraded_with_reason(tmp_path: Path) -> None:
    sim = await ModemSimulator("e173", link=tmp_path / "m").start()
    sim.set_network(False)
    sup = _sup(sim.port)
    sup.start()
    try:
        await sup.wait_state(DEGRADED, timeout=5)
        assert "not registered" in (sup.health().error or "")
        sim.set_network(True)
        await sup.wait_state(READY, timeout=5)
    finally:
        await sup.stop()
        await sim.stop()


async def test_two_modems_supervised_independently(tmp_path: Path) -> None:
    a = await ModemSimulator("ec25", link=tmp_path / "a").start()
    b = await ModemSimulator("e3372", link=tmp_path / "b").start()
    sa, sb = _sup(a.port, name="a"), _sup(b.port, name="b")
    sa.start()
    sb.start()
    try:
        await asyncio.gather(sa.wait_state(READY, timeout=5), sb.wait_state(READY, timeout=5))
        a.disappear()
        await sa.wait_state(LOST, timeout=5)
        assert sb.state == READY
        await sb.send("+447700900123", "from b")
        assert len(b.accepted) == 1
    finally:
        await sa.stop()
        await sb.stop()
        await a.stop()
        await b.stop()


async def test_sim_removed_is_degraded_and_back_ready_with_its_pin(tmp_path: Path) -> None:
    """SIM800L: "+CPIN: NOT READY" on removal makes the supervisor look at once (no
    waiting for the health interval, 30 s here); on insertion the SIM wants its PIN again
    and the modem is initialised anew on the open port, no reopen."""
    sim = await ModemSimulator("sim800l", link=tmp_path / "m", pin="4321").start()
    sup = ModemSupervisor(sim.port, pin="4321", poll_interval=0.05, health_interval=30.0,
                          sim_poll_interval=0.2, command_timeout=0.5)
    sup.start()
    try:
        await sup.wait_state(READY, timeout=5)
        sim.remove_sim()
        await sup.wait_state(DEGRADED, timeout=3)
        assert (sup.health().error or "").startswith("SIM not inserted (+CME ERROR: 10")
        assert not sup.available()
        sim.insert_sim()
        await sup.wait_state(READY, timeout=3)
        assert sup.available() and sup.reopens == 0 and sim.engine.state.pin_entered
        assert len(await sup.send("+447700900123", "back", status_report=False)) == 1
    finally:
        await sup.stop()
        await sim.stop()


async def test_sim_removed_silently_is_found_by_a_send_and_polled_back(
        tmp_path: Path) -> None:
    """A modem that says nothing (generic): the refused send makes it unavailable at once;
    AT+CPIN? every sim_poll_interval finds the SIM back."""
    sim = await ModemSimulator("generic", link=tmp_path / "m").start()
    sup = ModemSupervisor(sim.port, poll_interval=0.05, health_interval=30.0,
                          sim_poll_interval=0.2, command_timeout=0.5)
    sup.start()
    try:
        await sup.wait_state(READY, timeout=5)
        sim.remove_sim()
        with pytest.raises(SendFailed):
            await sup.send("+447700900123", "no sim", status_report=False)
        assert sup.state == DEGRADED and not sup.available()
        assert "SIM not inserted" in (sup.health().error or "")
        sim.insert_sim()
        await sup.wait_state(READY, timeout=3)
        assert len(await sup.send("+447700900123", "back", status_report=False)) == 1
    finally:
        await sup.stop()
        await sim.stop()


async def test_modem_problems_are_logged_at_warning(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """absent / degraded need a person, so `journalctl -p warning` must show them (issue 16
    item 2); ready is INFO. Each is one key=value line."""
    import logging

    caplog.set_level(logging.DEBUG, logger="textback.modem")
    link = tmp_path / "m"
    sup = _sup(str(link))
    sup.start()
    try:
        async with asyncio.timeout(5):  # ABSENT is also the state before the first look
            while sup.error is None:
                sup.state_changed.clear()
                await sup.state_changed.wait()
        assert sup.state == ABSENT
        sim = await ModemSimulator("e173", link=link).start()
        sim.set_network(False)
        await sup.wait_state(DEGRADED, timeout=5)
        sim.set_network(True)
        await sup.wait_state(READY, timeout=5)
    finally:
        await sup.stop()
        await sim.stop()
    states = {r.getMessage().split(" state=")[1].split(" ")[0]: r.levelno
              for r in caplog.records if r.getMessage().startswith("event=modem_state ")}
    assert states["absent"] == logging.WARNING and states["degraded"] == logging.WARNING
    assert states["ready"] == logging.INFO
