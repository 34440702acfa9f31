"""A call whose DID the daemon never saw is not skipped ``unknown-did`` (issue 12, finding 7).

Reproduction, deterministic (no kill loop): two overlapping copies of the real missed-call
trace (direct-noanswer.ami.ts, as the crash soak's ``burst_capture`` writes them). Daemon 1
sees call 1 start (its ``CallStart`` is kept in the store by ``OpenCallKeeper``) and is
killed; call 2's first events (Newchannel on the trunk in ``from-trunk`` with the DID, then
the Goto to ``route-direct``) went to the dead daemon's socket and are gone, as with a real
PBX. Daemon 2 seeds its tracker from the store, resynchronises from CoreShowChannels (the
fake PBX's channel table, built from the same real events) and gets the rest of the trace.

Call 1 (restored) kept its DID. Call 2 is recognised inbound (its trunk endpoint was
learned from call 1's seed) but its channel now sits in ``route-direct``/``s``: the DID is
nowhere in what a restarted listener can see. Before the fix it was recorded missed and
skipped ``unknown-did`` with a single DID configured; now the tracker says the DID was
never seen and, with exactly one ``[[did]]``, the pipeline attributes the call to it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.daemon_fakes import DID, Clock, make_config, opened
from tests.reliability.harness import burst_capture
from textback.outbound.open_calls import OpenCallKeeper
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline, Handled
from textback.pbx.asterisk.parser import AmiParser
from textback.pbx.asterisk.tracker import CallTracker
from textback.pbx.outcome import CallOutcome
from textback.testing.fake_ami import FakeAmi

TRUNK_CONFIG_CONTEXTS = ("from-trunk",)


def _index(events: list, *needles: bytes) -> int:
    return next(i for i, m in enumerate(events) if all(n in m.raw for n in needles))


async def _replay_with_restart(tmp_path: Path, config_dids: int = 1
                               ) -> tuple[list[CallOutcome], list[Handled]]:
    capture = tmp_path / "burst.ami.ts"
    burst_capture(capture, 2, gap_s=1.5)
    events = FakeAmi.from_capture(capture).events
    config = make_config(tmp_path)
    if config_dids != 1:
        extra = dataclasses.replace(config.dids[0], number="+15559870002")
        config = dataclasses.replace(config, dids=(*config.dids, extra))
    tcfg = config.trunks.tracker_config()
    # call 2 = copy 1: its trunk channel's Newchannel, and its Dial in route-direct
    call2_start = _index(events, b"Event: Newchannel", b"Channel: PJSIP/trunk-00000002")
    call2_dial = _index(events, b"Event: Newexten", b"Channel: PJSIP/trunk-00000002",
                        b"Application: Dial")
    pbx = FakeAmi(events=events)  # the PBX side: every event happens, seen or not
    clock = Clock(events[call2_dial].at)
    async with opened(tmp_path) as store:
        keeper = OpenCallKeeper(store, clock)
        first = CallTracker(tcfg)
        first.on_call_started = keeper.report
        parser = AmiParser()
        for m in events[:call2_start]:  # daemon 1 (then killed -9)
            pbx._happen(m.raw)
            for msg in parser.feed(m.raw):
                first.handle(msg, m.at)
            assert first.tick(m.at) == []  # nothing ended yet: nothing decided
        await keeper.drain()
        for m in events[call2_start:call2_dial + 1]:  # sent to the dead daemon: gone
            pbx._happen(m.raw)

        second = CallTracker(tcfg)  # daemon 2
        assert second.seed(await keeper.load("asterisk")) == 1
        second.tick(clock())  # the live client's clock ticks before the resync answers
        second.resync_begin()
        parser = AmiParser()
        for msg in parser.feed(pbx._core_show_channels("textback-resync-1")):
            if msg.name == "CoreShowChannel":
                second.resync_channel(msg)
        outcomes = second.resync_end()
        for m in events[call2_dial + 1:]:
            for msg in parser.feed(m.raw):
                second.handle(msg, m.at)
            outcomes += second.tick(m.at)
        outcomes += second.finish()

        pipeline = CallPipeline(store, Outbox(store, config=config), config, clock=clock)
        handled = [await pipeline.handle(o) for o in outcomes]
    return outcomes, handled


async def test_call_whose_did_was_never_seen_is_texted_from_the_only_did(
        tmp_path: Path) -> None:
    outcomes, handled = await _replay_with_restart(tmp_path)
    by_call = {o.call: o for o in outcomes}
    assert len(by_call) == 2
    restored = next(o for o in outcomes if o.extra.get("restored"))
    unseen = next(o for o in outcomes if not o.extra.get("restored"))
    assert [(h.action, h.reason) for h in handled] == [("queued", None), ("queued", None)]
    assert restored.did == DID and restored.verdict == "missed"
    assert unseen.direction == "inbound" and unseen.verdict == "missed"
    # the tracker does not make a DID up: it says it never saw one
    assert unseen.did is None and unseen.extra.get("did_unseen") is True


async def test_with_several_dids_a_never_seen_did_stays_unknown(tmp_path: Path) -> None:
    """Guessing between two businesses would text a caller in the wrong name."""
    outcomes, handled = await _replay_with_restart(tmp_path, config_dids=2)
    unseen = next(o for o in outcomes if not o.extra.get("restored"))
    result = {h.call: (h.action, h.reason) for h in handled}
    assert result[unseen.call] == ("skipped", "unknown-did")
    assert all(v == ("queued", None) for k, v in result.items() if k != unseen.call)
