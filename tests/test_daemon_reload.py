"""SIGHUP to a running ``textback run`` (issue 16 item 5): the config is reloaded without
dropping a call. The daemon is its own process (as systemd runs it: ``ExecReload`` sends
SIGHUP), on a replayed real Asterisk capture and a simulated modem; what the simulated
network accepted is the truth about what was texted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import SECRET, DaemonProc, burst_capture, write_config
from textback.testing.fake_ami import FakeAmi
from textback.testing.lab_config import LAB_DID
from textback.testing.modem_simulator import ModemSimulator

pytestmark = pytest.mark.slow

NEW_TEMPLATE = "Reloaded: {business} missed your call, we will ring back. Reply STOP to opt out"


def did(**extra: Any) -> list[dict[str, Any]]:
    """The lab DID (an array of tables is replaced whole), with ``extra`` keys."""
    return [{"number": LAB_DID, "business": "Acme Plumbing",
             "booking_url": "https://acme.example/book", "senders": ["modem:a"], **extra}]


async def until(check: Callable[[], Any], proc: DaemonProc | None = None,
                timeout: float = 30.0) -> None:
    """Wait for ``check()``; on timeout fail with the daemon's log (what it was doing)."""
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError("timed out; daemon log:\n" + "".join(
            proc.logs if proc is not None else [])) from None


def lines(proc: DaemonProc, event: str) -> list[str]:
    return [line for line in proc.logs if f"event={event} " in line]


@contextlib.asynccontextmanager
async def daemon(tmp: Path, ami: FakeAmi) -> AsyncIterator[tuple[DaemonProc, ModemSimulator,
                                                                 Callable[..., Path]]]:
    """The daemon on ``ami`` and a simulated modem; yields it, the simulator and a writer
    of its config file (``write(**sections)``, the reliability suite's lab config)."""
    await ami.start("127.0.0.1", 0)
    assert ami._server is not None
    port = ami._server.sockets[0].getsockname()[1]
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-reload", time_scale=0.0)
    await sim.start()

    def write(**sections: Any) -> Path:
        return write_config(tmp, port, sim.port, **sections)

    proc = DaemonProc(write())
    try:
        await proc.start()
        await until(lambda: lines(proc, "started") or not proc.running, proc)
        assert proc.running, "".join(proc.logs)
        yield proc, sim, write
    finally:
        await proc.stop()
        await ami.close()
        await sim.stop()


async def hangup(proc: DaemonProc) -> None:
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGHUP)


async def test_sighup_with_a_new_template_texts_the_next_caller_with_it(
        tmp_path: Path) -> None:
    capture = tmp_path / "two-calls.ami.ts"
    callers = burst_capture(capture, 2, gap_s=15.0)  # one call after the other
    ami = FakeAmi.from_capture(capture, speed=20.0, secret=SECRET)
    # the timeline stops before the second call's first event, until the reload is done
    ami.hold_at = next(i for i, m in enumerate(ami.events) if b"1796000001." in m.raw)
    async with daemon(tmp_path, ami) as (proc, sim, write):
        await until(lambda: len(sim.accepted) == 1 and ami.held.is_set(), proc)
        first = sim.accepted[0].decoded
        assert first.number == callers[0]
        assert (first.text or "").startswith("Sorry we missed your call - Acme Plumbing")

        write(did=did(templates={"business_hours": NEW_TEMPLATE}))
        await hangup(proc)
        await until(lambda: lines(proc, "config_reloaded") or not proc.running, proc)
        assert proc.running, "".join(proc.logs)
        (reloaded,) = lines(proc, "config_reloaded")
        assert "changed=did[1].templates " in reloaded
        assert not lines(proc, "reload_needs_restart")

        ami.release()
        await until(lambda: len(sim.accepted) == 2, proc)
        second = sim.accepted[1].decoded
        assert second.number == callers[1]
        assert second.text == NEW_TEMPLATE.format(business="Acme Plumbing")
        assert proc.running
    assert proc.proc is not None and proc.proc.returncode == 0


async def test_sighup_with_a_broken_config_keeps_the_old_one_in_one_warning(
        tmp_path: Path) -> None:
    async with daemon(tmp_path, FakeAmi(events=[], secret=SECRET)) as (proc, _, write):
        write(policy={"caller_day_cap": 0})  # must be positive: the loader refuses it
        await hangup(proc)
        await until(lambda: lines(proc, "reload_refused") or not proc.running, proc)
        await asyncio.sleep(0.2)  # a second line, if any, would be written now
        assert proc.running, "".join(proc.logs)
        (refused,) = lines(proc, "reload_refused")
        assert refused.startswith("event=reload_refused level=warning ")
        assert "policy.caller_day_cap" in refused and "textback check-config" in refused
        assert "Traceback" not in "".join(proc.logs)
        assert not lines(proc, "config_reloaded")

        # the file fixed (back to what runs): nothing changed, so the broken value was
        # never applied
        write()
        await hangup(proc)
        await until(lambda: lines(proc, "config_reloaded") or not proc.running, proc)
        (reloaded,) = lines(proc, "config_reloaded")
        assert "changed=none " in reloaded
        assert proc.running


async def test_sighup_with_a_new_pbx_host_is_logged_as_needing_a_restart(
        tmp_path: Path) -> None:
    async with daemon(tmp_path, FakeAmi(events=[], secret=SECRET)) as (proc, _, write):
        await until(lambda: lines(proc, "ami_logged_in"), proc)
        write(pbx={"host": "127.0.0.2"}, policy={"caller_day_cap": 7})
        await hangup(proc)
        await until(lambda: lines(proc, "reload_needs_restart") or not proc.running, proc)
        assert proc.running, "".join(proc.logs)
        (restart,) = lines(proc, "reload_needs_restart")
        assert restart.startswith("event=reload_needs_restart level=warning ")
        assert " keys=pbx.host " in restart
        (reloaded,) = lines(proc, "config_reloaded")
        assert "changed=policy.caller_day_cap " in reloaded
        # the link stays on the host it has open: no reconnect, no second login
        await asyncio.sleep(0.3)
        assert len(lines(proc, "ami_logged_in")) == 1 and not lines(proc, "ami_link_down")
