"""Bounded call state (issue 12, findings 4 and 8).

* tick and the per-event progress report touch only the calls that are due or changed,
  never every open call (counted, not timed: ``_progress`` is wrapped to count the calls
  whose evidence is recomputed);
* a call open longer than ``max_call_age_s`` leaves the tracker as ``ignored``/``expired``,
  is recorded by the pipeline (its open_calls row goes with it) and never texted;
* a genuine missed call after a flood of never-ending calls is still decided, at a cost
  that does not depend on the flood;
* per-call state is capped (channels / legs kept per call);
* the live ESL client's ``now`` is the wall clock the events' epochs use.

Events: the flood calls are the real trunk ``Newchannel`` of asterisk-22/direct-noanswer.ami
(and the real a-leg ``CHANNEL_CREATE`` of freeswitch-1.10/direct-noanswer.esl) with only
their ids changed; the genuine call is that capture unchanged. The wall-clock test serves
the real freeswitch-1.10/direct-answered.esl with its times shifted to "now".
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ASTERISK_TRACES, FREESWITCH_TRACES
from tests.daemon_fakes import make_config, opened, pump_link
from textback.outbound import call_record, open_calls
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.pbx.asterisk import tracker as ami_tracker
from textback.pbx.asterisk.parser import AmiMessage, AmiParser
from textback.pbx.asterisk.tracker import CallTracker
from textback.pbx.call_start import CallStart
from textback.pbx.freeswitch.client import EslAuthError, EslClient
from textback.pbx.freeswitch.parser import EslEvent, decode_event, iter_frames
from textback.pbx.freeswitch.tracker import FsCallTracker
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig
from textback.testing.fake_esl import FakeEslServer, Plan, capture_event_frames

HOUR = 3600.0


def ami_events(name: str) -> list[AmiMessage]:
    return [m for m in AmiParser().feed((ASTERISK_TRACES / name).read_bytes())
            if m.kind == "event"]


def fs_events(name: str) -> list[EslEvent]:
    out = []
    for f in iter_frames((FREESWITCH_TRACES / name).read_bytes()):
        if f.is_event:
            ev = decode_event(f)
            assert ev is not None
            out.append(ev)
    return out


# the real trunk Newchannel of direct-noanswer.ami (caller +15551230001 from the trunk)
NEWCHANNEL = next(m for m in ami_events("direct-noanswer.ami") if m.name == "Newchannel")


def flood_call(i: int) -> AmiMessage:
    """The real Newchannel with its Uniqueid/Linkedid changed: a call that never ends."""
    return AmiMessage(NEWCHANNEL.text.replace("1795395183.0", f"1795000000.{i}"))


def flood(t: CallTracker, n: int, now: float) -> None:
    for i in range(n):
        t.handle(flood_call(i), now)
    t.tick(now)


@pytest.fixture
def touched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The Linkedids whose progress the tracker recomputes (one per call touched)."""
    seen: list[str] = []
    real = ami_tracker._progress

    def counting(call: ami_tracker._Call) -> object:
        seen.append(call.linkedid)
        return real(call)

    monkeypatch.setattr(ami_tracker, "_progress", counting)
    yield seen


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_tick_and_one_event_touch_no_call_but_the_one_that_changed(
        n: int, touched: list[str]) -> None:
    t = CallTracker(TrackerConfig(settle_s=1.0))
    starts: list[CallStart] = []
    t.on_call_started = starts.append
    flood(t, n, 100.0)
    assert len(starts) == n and t.open_calls == n
    touched.clear()
    for k in range(10):  # idle ticks
        t.tick(101.0 + k)
    assert touched == []
    # one event of one call (its Dial starting, the real DialBegin's source header) + tick
    t.handle(AmiMessage.from_headers({"Event": "Newexten", "Uniqueid": "1795000000.7",
                                      "Linkedid": "1795000000.7", "Application": "Dial",
                                      "AppData": "PJSIP/101,20"}), 112.0)
    t.tick(112.0)
    assert touched == ["1795000000.7"]
    assert starts[-1].call == "1795000000.7" and starts[-1].progress.stage == "dial"


def test_call_open_longer_than_the_max_age_expires_once() -> None:
    t = CallTracker(TrackerConfig(settle_s=1.0, max_call_age_s=4 * HOUR))
    t.handle(flood_call(1), 1000.0)
    assert t.tick(1000.0 + 4 * HOUR - 1) == [] and t.open_calls == 1
    (o,) = t.tick(1000.0 + 4 * HOUR + 1)
    assert (o.call, o.direction, o.verdict, o.reason) == ("1795000000.1", "inbound",
                                                          "ignored", "expired")
    assert o.caller == "+15551230001" and o.extra.get("expired") is True
    assert t.open_calls == 0 and not t._chans and t.was_decided("1795000000.1")
    # the PBX still talks about it: nothing new
    t.handle(AmiMessage.from_headers({"Event": "Hangup", "Uniqueid": "1795000000.1",
                                      "Linkedid": "1795000000.1", "Cause": "16"}),
             1000.0 + 5 * HOUR)
    assert t.tick(1000.0 + 6 * HOUR) == [] and t.finish() == []
    assert t.stats.dropped.get("expired-call") == 1


def test_default_max_age_is_four_hours() -> None:
    assert TrackerConfig().max_call_age_s == 4 * HOUR


def test_freeswitch_call_open_longer_than_the_max_age_expires() -> None:
    create = next(e for e in fs_events("direct-noanswer.esl") if e.name == "CHANNEL_CREATE")
    t0 = FsCallTracker.event_time(create)
    assert t0 is not None
    t = FsCallTracker(TrackerConfig(max_call_age_s=4 * HOUR))
    assert t.handle(create, t0) == []
    assert t.tick(t0 + 4 * HOUR - 1) == [] and t.open_calls == 1
    (o,) = t.tick(t0 + 4 * HOUR + 1)
    assert (o.direction, o.verdict, o.reason) == ("inbound", "ignored", "expired")
    assert o.call == create.get("Unique-ID") and o.extra.get("expired") is True
    assert t.open_calls == 0 and t.is_decided(o.call)


def test_genuine_missed_call_after_a_flood_is_decided_at_a_flood_independent_cost(
        touched: list[str]) -> None:
    """10k calls that never end, then the real direct-noanswer call, fed and ticked per
    event as the live client does; then the flood itself expires."""
    t = CallTracker(TrackerConfig(settle_s=1.0, max_call_age_s=4 * HOUR))
    t.on_call_started = lambda s: None
    flood(t, 10_000, 1000.0)
    touched.clear()
    out: list[CallOutcome] = []
    msgs = ami_events("direct-noanswer.ami")
    for k, m in enumerate(msgs):
        t.handle(m, 2000.0 + k * 0.5)
        out += t.tick(2000.0 + k * 0.5)
    out += t.tick(2100.0)
    assert [(o.call, o.verdict, o.reason) for o in out] == [("1795395183.0", "missed",
                                                              "noanswer")]
    assert set(touched) <= {"1795395183.0"} and len(touched) <= len(msgs)
    expired = t.tick(1000.0 + 4 * HOUR + 1)
    assert len(expired) == 10_000 and {o.reason for o in expired} == {"expired"}
    assert t.open_calls == 0 and not t._chans


async def test_expired_call_is_recorded_not_texted_and_leaves_open_calls(
        tmp_path: Path) -> None:
    t = CallTracker(TrackerConfig(settle_s=1.0, max_call_age_s=4 * HOUR))
    starts: list[CallStart] = []
    t.on_call_started = starts.append
    t.handle(flood_call(3), 1000.0)
    (o,) = t.tick(1000.0 + 5 * HOUR)
    async with opened(tmp_path) as store:
        assert await open_calls.keep_open_call(store, starts[-1], 1001.0)
        outbox = Outbox(store)
        pipe = CallPipeline(store, outbox, make_config(tmp_path), clock=lambda: 1000.0 + 5 * HOUR,
                            wake=lambda: None)
        handled = await pipe.handle(o)
        assert handled.recorded and handled.action == "ignored" and handled.reason == "expired"
        row = await call_record.call(store, "1795000000.3")
        assert row is not None and row["verdict"] == "ignored" and row["reason"] == "expired"
        assert await store.fetchall("SELECT * FROM outbox") == []
        assert await open_calls.load_open_calls(store) == []


def test_channels_kept_per_call_are_capped() -> None:
    """A call that spawns channel after channel (a Local loop, a huge ring group) keeps at
    most MAX_CHANS_PER_CALL of them; its verdict still comes."""
    t = CallTracker(TrackerConfig(settle_s=1.0))
    t.handle(flood_call(1), 10.0)
    lid = "1795000000.1"
    for i in range(2_000):
        uid = f"1795000000.{10_000 + i}"
        t.handle(AmiMessage.from_headers({
            "Event": "Newchannel", "Channel": f"Local/{i}@from-internal-{i:08x};1",
            "ChannelState": "0", "Context": "from-internal", "Exten": str(i),
            "Uniqueid": uid, "Linkedid": lid}), 11.0)
        t.handle(AmiMessage.from_headers({"Event": "Hangup", "Uniqueid": uid,
                                          "Linkedid": lid, "Cause": "16"}), 11.0)
    assert len(t._calls[lid].chans) <= ami_tracker.MAX_CHANS_PER_CALL
    assert len(t._chans) <= ami_tracker.MAX_CHANS_PER_CALL
    assert len(t._locals) <= ami_tracker.MAX_CHANS_PER_CALL
    t.handle(AmiMessage.from_headers({"Event": "Hangup", "Uniqueid": lid, "Linkedid": lid,
                                      "Cause": "16"}), 12.0)
    (o,) = t.tick(20.0)
    assert o.call == lid and o.verdict == "missed"
    assert t.open_calls == 0 and not t._chans and not t._locals


def test_legs_kept_per_freeswitch_call_are_capped() -> None:
    from textback.pbx.freeswitch import tracker as fs_tracker

    evs = fs_events("direct-noanswer.esl")
    create = next(e for e in evs if e.name == "CHANNEL_CREATE")
    root = create.get("Unique-ID") or ""
    t = FsCallTracker(TrackerConfig())
    t.handle(create)
    for i in range(2_000):
        uid = f"00000000-0000-0000-0000-{i:012d}"
        for name in ("CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"):
            t.handle(EslEvent(name=name, headers={
                "Event-Name": name, "Unique-ID": uid, "variable_originator": root,
                "Call-Direction": "outbound", "Hangup-Cause": "NO_ANSWER",
                "Channel-Name": f"sofia/internal/{i}@127.0.0.1"}, body=""))
    assert len(t._calls[root].legs) <= fs_tracker.MAX_LEGS_PER_CALL
    assert len(t._legs) <= fs_tracker.MAX_LEGS_PER_CALL


# ------------------------------------------------------------------ finding 8: clocks
_EPOCH = re.compile(rb"(?<![0-9])(17[0-9]{8})([0-9]{6})?(?![0-9])")


def _shift(frame: bytes, by_s: int) -> bytes:
    """Every epoch in the frame (seconds, or microseconds) moved by ``by_s`` seconds;
    the digit count stays, so Content-Length stays right."""
    def sub(m: re.Match[bytes]) -> bytes:
        return str(int(m.group(1)) + by_s).encode() + (m.group(2) or b"")
    return _EPOCH.sub(sub, frame)


class ResyncFirstServer(FakeEslServer):
    """The fake FreeSWITCH, holding a connection's events until that connection's
    ``show calls`` has been answered (so the resync, not a later event, sees the bridge)."""

    async def _api(self, writer: asyncio.StreamWriter, cmd: str) -> bool:
        answered = await super()._api(writer, cmd)
        if cmd == "show calls as json":
            self._resynced(writer).set()
        return answered

    def _resynced(self, writer: asyncio.StreamWriter) -> asyncio.Event:
        events: dict[int, asyncio.Event] = self.__dict__.setdefault("_resync_events", {})
        return events.setdefault(id(writer), asyncio.Event())

    async def _pump(self, writer: asyncio.StreamWriter, plan: Plan,
                    silent: asyncio.Event) -> None:
        await self._resynced(writer).wait()
        await super()._pump(writer, plan, silent)


async def test_call_answered_while_the_listener_was_away_rings_for_the_time_it_rang() -> None:
    """The real direct-answered.esl; we see its a-leg created 20 s ago (its times shifted
    so), then the link drops, the b-leg answers and is bridged while we are away, and the
    resync's ``show calls`` shows the bridge: ring_s is ~20 s (the ESL client used to pass
    the loop's monotonic clock as ``now``, against event epochs: ring_s came out 0)."""
    frames = capture_event_frames((FREESWITCH_TRACES / "direct-answered.esl").read_bytes())
    names = [f.split(b"Event-Name: ")[1].split(b"\n")[0] for f in frames]
    first = names.index(b"CHANNEL_CREATE")
    bridge = names.index(b"CHANNEL_BRIDGE")
    t0 = int(frames[first].split(b"Event-Date-Timestamp: ")[1][:10])
    shift = int(time.time()) - 20 - t0
    # before the drop: 20 s ago; what follows happens now (same gaps as the capture)
    later = int(time.time()) - int(frames[bridge].split(b"Event-Date-Timestamp: ")[1][:10])
    frames = [_shift(f, shift if i <= first else later) for i, f in enumerate(frames)]
    got: list[CallOutcome] = []
    plans = [Plan(count=first + 1, after="drop", skip=bridge + 1 - (first + 1)), Plan()]
    async with ResyncFirstServer(frames, plans=plans) as srv:
        client = EslClient("127.0.0.1", srv.port, "ClueCon", TrackerConfig(settle_s=0.2),
                           ping_timeout=2.0, backoff_min=0.05)
        task = asyncio.create_task(client.run())
        pump = asyncio.create_task(pump_link(client, got))
        try:
            for _ in range(400):
                if got or task.done():
                    break
                await asyncio.sleep(0.02)
        finally:
            client.stop()
            task.cancel()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, EslAuthError):
                await task
    assert client.connections >= 2, (got, srv.commands, task.cancelled() or task.exception())
    (o,) = got
    assert (o.call, o.verdict) == ("e61d5c3c-fc43-4d23-bd23-4d9054d3c09c", "answered")
    assert 19.0 <= o.ring_s <= 40.0, o.ring_s


def test_max_call_age_is_a_trunks_key_in_hours(tmp_path: Path) -> None:
    from textback.config import ConfigError, parse_config
    from textback.testing.lab_config import lab_config_toml

    def load(extra: str) -> TrackerConfig:
        text = lab_config_toml(store=tmp_path / "t.db").replace(
            'default_region = "US"\n', 'default_region = "US"\n' + extra)
        cfg = parse_config(text, tmp_path / "t.toml", check_permissions=False)
        return cfg.trunks.tracker_config()

    assert load("").max_call_age_s == 4 * HOUR
    assert load("max_call_age_h = 0.5\n").max_call_age_s == 1800.0
    with pytest.raises(ConfigError, match="max_call_age_h"):
        load("max_call_age_h = 0\n")


def test_a_clock_that_stands_still_cannot_pile_up_settling_calls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The ESL ingest bench's RSS growth: a replay whose events repeat the same times never
    moves the settle clock on, so every ended call waited for the end of input. Now past
    MAX_SETTLING the oldest are decided at once (counted), with the same verdict."""
    from textback.pbx.freeswitch import tracker as fs_tracker

    monkeypatch.setattr(fs_tracker, "MAX_SETTLING", 20)
    monkeypatch.setattr(ami_tracker, "MAX_SETTLING", 20)
    raw = (FREESWITCH_TRACES / "direct-noanswer.esl").read_bytes()
    fs = FsCallTracker(TrackerConfig())
    fs_out: list[CallOutcome] = []
    most = 0
    for rep in range(100):
        data = raw.replace(b"94ef8245", b"%08x" % rep)  # the a-leg's id, new each time
        for f in iter_frames(data):
            ev = decode_event(f) if f.is_event else None
            if ev is not None:
                fs_out += fs.handle(ev)
                most = max(most, fs.open_calls)
    assert most <= 22 and len(fs_out) >= 75
    assert {(o.verdict, o.reason) for o in fs_out} == {("missed", "noanswer")}
    assert fs.stats.dropped["settled-early"] >= 75

    msgs = ami_events("direct-noanswer.ami")
    ast = CallTracker(TrackerConfig())
    ast_out: list[CallOutcome] = []
    most = 0
    for rep in range(100):
        # new Uniqueids/Linkedid, same epoch and times: the clock stands still
        ids = {"0": f"1795395183.{1000 + 2 * rep}", "1": f"1795395183.{1001 + 2 * rep}"}
        for m in msgs:
            ast.handle(AmiMessage(re.sub(r"1795395183\.([01])\b", lambda u, ids=ids: ids[u[1]],
                                         m.text)))
            ast_out += ast.tick()
            most = max(most, ast.open_calls)
    assert most <= 22 and len(ast_out) >= 75
    assert {(o.verdict, o.reason) for o in ast_out} == {("missed", "noanswer")}
