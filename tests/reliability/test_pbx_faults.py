"""PBX link faults against the daemon subprocess: the AMI connection dropped abruptly in the
middle of a call (FakeAmi drop_at, between the calls' Newchannel and Hangup). The daemon
reconnects, resynchronises through CoreShowChannels, and every missed call is texted once.

Not covered here yet (see RELIABILITY.md): half-open links through the daemon (its AMI
ping_timeout is fixed at 15 s, not in the config; tests/test_ami_client.py covers it on the
client with a short timeout), refused-for-a-minute and a PBX restart with a new banner.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.reliability.harness import (
    MISSED_CALL,
    SECRET,
    Rig,
    burst_capture,
    caller_for,
    edit_config,
    record,
    rig,
    run_once,
    until,
)


async def test_ami_dropped_between_calls_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    n = 4
    # the 4 calls overlap (0.5 s apart, ~9 s each): drop about halfway, all of them ringing
    run = await run_once(tmp_path, n, drop_at=2 * (MISSED_CALL.read_bytes().count(b"#TS ") - 5))
    assert run.status in (0, -15), "".join(run.logs[-20:])
    assert run.connections >= 2, "the fault was never injected"
    lost = [caller_for(i) for i in range(n) if run.sent[caller_for(i)] == 0
            and any(c["caller"] == caller_for(i) for c in run.calls)]
    dup = [k for k, v in run.sent.items() if v > 1]
    unseen = n - len(run.calls)
    record("AMI connection dropped (drop_at)", 1, int(run.connections >= 2), len(lost),
           len(dup), None, calls=n, seen=len(run.calls), unseen=unseen)
    assert dup == []
    assert lost == [], [(c["caller"], c["verdict"], c["reason"], c["skip_reason"])
                        for c in run.calls]


# ---------------------------------------------------------------- faults with timings
# ([pbx] ping_timeout_s = 2 in these configs: the 15 s default bounds detection in
# production; 2 s keeps the quick run short and shows the same mechanism)

PING_TIMEOUT_S = 2.0


def _short_ping(config: Path) -> None:
    edit_config(config, "pbx", f"ping_timeout_s = {PING_TIMEOUT_S}")


def _check(r: Rig, fault: str, detected: float | None, recovered: float | None,
           **extra: object) -> None:
    """Every caller of the burst recorded and texted exactly once; the figure recorded."""
    t = r.tally()
    calls, _ = r.store()
    record(fault, 1, int(recovered is not None and not t.lost), len(t.lost),
           len(t.duplicated), recovered, calls=len(r.callers), seen=len(calls),
           texted_once=t.texted_once,
           detected_s=None if detected is None else round(detected, 2), **extra)
    assert t.duplicated == [] and t.unexpected == []
    assert t.lost == [] and t.texted_once == len(r.callers), [
        (c["caller"], c["verdict"], c["reason"], c["skip_reason"]) for c in calls
    ] + r.logs[-30:]
    assert not any(SECRET in line for line in r.logs)
    assert detected is not None and detected <= 15.0
    assert recovered is not None and recovered <= 30.0


async def test_ami_half_open_is_detected_and_calls_resynchronised(tmp_path: Path) -> None:
    """The AMI socket stays open but the PBX says nothing and answers nothing (silent_at,
    mid-calls; 3 events happen meanwhile and are never delivered): the daemon's pings go
    unanswered, it gives up after ping_timeout_s, reconnects and resynchronises the calls
    still ringing through CoreShowChannels."""
    n = 4
    at = 2 * (MISSED_CALL.read_bytes().count(b"#TS ") - 5)
    async with rig(tmp_path, n, configure=_short_ping, silent_at=at, lost_on_fault=3) as r:
        t_silent = await until(lambda: r.ami.silent_at is None, 20, 0.02)
        assert t_silent is not None, "the fault was never injected"
        t_back = await until(lambda: r.ami.logins >= 2, 20, 0.02)
        await r.settle(30)
    detected = None if t_back is None else t_back - t_silent
    _check(r, "AMI half-open (silent), ping_timeout_s = 2", detected, detected,
           logins=r.ami.logins)


async def test_ami_refused_for_a_while_reconnects_with_backoff(
        tmp_path: Path, soak: bool) -> None:
    """The PBX's AMI port refuses connections (server stopped, link dropped mid-calls)
    for ``down_s``, then listens again on the same port: the daemon retries with backoff,
    logs back in and loses nothing."""
    down_s = 60.0 if soak else 4.0
    n = 4
    async with rig(tmp_path, n) as r:
        mid = 2 * (MISSED_CALL.read_bytes().count(b"#TS ") - 5)
        assert await until(lambda: r.ami.cursor >= mid, 20, 0.02) is not None
        await r.ami.close()  # refuse new connections
        r.ami.drop_at = r.ami.cursor  # and abort the current one at the next event
        t_down = await until(lambda: r.ami.drop_at is None, 10, 0.02)
        assert t_down is not None
        await asyncio.sleep(down_s)
        await r.ami.start("127.0.0.1", r.ami_port)
        t_up = time.monotonic()
        t_back = await until(lambda: r.ami.logins >= 2, 60, 0.05)
        await r.settle(30)
    recovered = None if t_back is None else t_back - t_up
    _check(r, f"AMI refused for {down_s:g} s, then back on the same port", recovered,
           recovered, down_s=down_s,
           failed_attempts_logged=sum(x.startswith("WARNING") and "AMI 127.0.0.1" in x
                                      for x in r.logs))


async def test_pbx_restart_new_banner_fresh_uniqueids(tmp_path: Path) -> None:
    """Asterisk restarts between two bursts: the link drops, the port refuses for a
    moment, then a NEW server (no channels, its own banner and FullyBooted, fresh
    Uniqueids) serves the second burst. Calls of both lives texted once, none twice."""
    from textback.ami_listener.fake_ami import FakeAmi

    first, second = 2, 3
    async with rig(tmp_path, first) as r:
        assert await until(r.all_texted, 30, 0.1) is not None, "".join(r.logs[-20:])
        capture = tmp_path / "after-restart.ami.ts"

        def fresh(i: int, raw: bytes) -> bytes:  # the same real trace, new ids and callers
            return (raw.replace(f"{1796000000 + i}.".encode(), f"{1796000500 + i}.".encode())
                    .replace(caller_for(i).encode(), caller_for(500 + i).encode()))
        burst_capture(capture, second, gap_s=0.5, mutate=fresh)
        await r.ami.close()
        r.abort_ami()  # the old PBX is gone, its connections with it
        t_restart = time.monotonic()
        new = FakeAmi.from_capture(capture, speed=10.0, secret=SECRET)
        r.ami = new
        await asyncio.sleep(0.5)
        await new.start("127.0.0.1", r.ami_port)
        r.callers += [caller_for(500 + i) for i in range(second)]
        t_back = await until(lambda: new.logins >= 1, 30, 0.05)
        await r.settle(30)
    recovered = None if t_back is None else t_back - t_restart
    _check(r, "PBX restart (new server, FullyBooted, fresh Uniqueids)", recovered,
           recovered)
