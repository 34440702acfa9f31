"""Finality is event-driven: a call is decided when its settle window closes, by a timer
armed for the tracker's ``next_due()``, not by a loop that ticks on a fixed step.

The trackers are checked with explicit times (no clock at all); the live clients against
the fake PBX servers replaying real captures (asterisk-22/direct-busy, freeswitch-1.10
direct-busy): the client's keepalive/watchdog no longer advances the stream, so the only
way the call can be decided while the link stays up is the due timer, and the timer must
have been armed for exactly the due time the tracker gave after the final hangup.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.conftest import ASTERISK_TRACES, FREESWITCH_TRACES
from tests.daemon_fakes import pump_link
from textback.pbx.asterisk.client import AmiClient
from textback.pbx.asterisk.stream import AsteriskStream
from textback.pbx.due_timer import NO_PROGRESS_DELAY_S, DueTimer
from textback.pbx.freeswitch.client import EslClient
from textback.pbx.freeswitch.stream import FreeswitchStream
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig
from textback.testing.fake_ami import FakeAmi
from textback.testing.fake_esl import FakeEslServer, capture_event_frames

SETTLE = 0.2
SECRET = "settle-timer-secret"


def test_asterisk_tracker_next_due_is_the_end_of_the_settle_window() -> None:
    stream = AsteriskStream(TrackerConfig(settle_s=SETTLE))
    data = (ASTERISK_TRACES / "direct-busy.ami").read_bytes()
    stream.receive_data(data, 1000.0)  # the whole call, last hangup at t = 1000
    due = stream.next_due()
    assert due == 1000.0 + SETTLE
    assert stream.tick(due - 0.01) == []  # not before its window closes
    out = stream.tick(due)
    assert [o.verdict for o in out] == ["missed"]
    # nothing settling any more: only the expiry of open calls (none) could be due
    assert stream.next_due() is None


def test_freeswitch_tracker_next_due_is_the_end_of_the_settle_window() -> None:
    stream = FreeswitchStream(TrackerConfig(settle_s=SETTLE))
    stream.receive_data((FREESWITCH_TRACES / "direct-busy.esl").read_bytes(), 2e9)
    due = stream.next_due()
    assert due == 2e9 + SETTLE
    assert stream.tick(due - 0.01) == []
    assert [o.verdict for o in stream.tick(due)] == ["missed"]
    assert stream.next_due() is None


def test_next_due_includes_expiry_of_open_calls() -> None:
    data = (ASTERISK_TRACES / "direct-busy.ami").read_bytes()
    cut = data[: data.index(b"Event: Hangup")]  # the call still rings
    stream = AsteriskStream(TrackerConfig(settle_s=SETTLE, max_call_age_s=60.0))
    stream.receive_data(cut, 500.0)
    assert stream.next_due() == 560.0


async def test_due_timer_only_moves_earlier_and_fires_at_the_due_time() -> None:
    loop = asyncio.get_running_loop()
    due: list[float | None] = [loop.time() + 30.0]
    fired = asyncio.Event()

    def fire() -> None:
        due[0] = None  # the stream decided what was due
        fired.set()

    timer = DueTimer(lambda: due[0], loop.time, fire)
    timer.rearm()
    assert timer.armed_for == due[0]
    later = due[0]
    due[0] = later + 10  # a later due time never delays the armed one
    timer.rearm()
    assert timer.armed_for == later
    due[0] = loop.time() + 0.05  # an earlier one re-arms
    timer.rearm()
    assert timer.armed_for == due[0]
    due_at = due[0]
    assert due_at is not None
    await asyncio.wait_for(fired.wait(), 10)
    assert timer.fired == 1 and loop.time() >= due_at - 0.01  # loop timers' resolution
    assert timer.armed_for is None  # nothing more due: no wake-up armed


async def test_due_timer_never_spins_on_a_due_time_the_stream_does_not_take() -> None:
    loop = asyncio.get_running_loop()
    stuck = loop.time()
    fires: list[float] = []
    twice = asyncio.Event()

    def fire() -> None:
        fires.append(loop.time())
        if len(fires) >= 2:
            twice.set()

    timer = DueTimer(lambda: stuck, loop.time, fire)
    timer.rearm()
    await asyncio.wait_for(twice.wait(), 10)
    # still "due" after a fire: the retry is scheduled NO_PROGRESS_DELAY_S on, not at once
    handle = timer._handle
    assert handle is not None and timer.armed_for == stuck
    assert handle.when() >= fires[-1] + NO_PROGRESS_DELAY_S - 1e-6
    timer.cancel()


def _record_due(stream: Any, log: list[tuple[float, float | None]]) -> None:
    """Note, after each received chunk, the clock given and the due time it left."""
    receive = stream.receive_data

    def receive_data(data: bytes, now: float | None = None) -> None:
        receive(data, now)
        log.append((now or 0.0, stream.next_due()))

    stream.receive_data = receive_data


async def test_ami_client_decides_at_the_due_time_without_a_tick_step() -> None:
    server = FakeAmi.from_capture(ASTERISK_TRACES / "direct-busy.ami.ts", secret=SECRET,
                                  speed=50.0)
    host, port = await server.start()
    # ping_timeout 1000 s: the keepalive's step is 1 s and it never advances the stream
    client = AmiClient(host, port, "textback", SECRET, TrackerConfig(settle_s=SETTLE),
                       ping_timeout=1000.0)
    dues: list[tuple[float, float | None]] = []
    _record_due(client.stream, dues)
    armed: list[float | None] = []
    rearm = client.due_timer.rearm

    def noting_rearm() -> None:
        rearm()
        armed.append(client.due_timer.armed_for)

    client.due_timer.rearm = noting_rearm  # type: ignore[method-assign]
    out: list[CallOutcome] = []
    task = asyncio.create_task(client.run())
    pump = asyncio.create_task(pump_link(client, out))
    try:
        async with asyncio.timeout(15):
            await server.finished.wait()
            while not out:
                await asyncio.sleep(0.01)
    finally:
        client.stop()
        await asyncio.wait_for(task, 5)
        pump.cancel()
        await server.close()
    assert [o.verdict for o in out] == ["missed"]
    hangup_due = [due for now, due in dues if due is not None and due == now + SETTLE]
    assert hangup_due, "the last hangup left its settle window as the next due time"
    assert hangup_due[-1] in armed  # the wake-up was scheduled for exactly that time
    assert client.due_timer.fired >= 1


async def test_esl_client_decides_at_the_due_time_without_a_tick_step() -> None:
    frames = capture_event_frames((FREESWITCH_TRACES / "direct-busy.esl").read_bytes())
    got: list[CallOutcome] = []
    async with FakeEslServer(frames) as srv:
        # tick_interval 1000 s: the watchdog sleeps through the whole test
        client = EslClient("127.0.0.1", srv.port, "ClueCon", TrackerConfig(settle_s=SETTLE),
                           ping_timeout=3000.0, tick_interval=1000.0)
        dues: list[tuple[float, float | None]] = []
        _record_due(client.stream, dues)
        task = asyncio.create_task(client.run())
        pump = asyncio.create_task(pump_link(client, got))
        try:
            async with asyncio.timeout(15):
                while not got:
                    await asyncio.sleep(0.01)
        finally:
            client.stop()
            task.cancel()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert [o.verdict for o in got] == ["missed"]
    assert any(due is not None and due == now + SETTLE for now, due in dues)
    assert client.due_timer.fired >= 1
