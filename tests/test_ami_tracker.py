"""CallTracker rules, on real captures and on small variations of them.

Where a rule has no capture of its own (withheld caller, directed pickup, blind transfer,
voicemail hang-up during the greeting), the events below are a real capture's events with
the one field the manifest describes changed, or a minimal sequence written with the same
headers Asterisk 22 sends in these captures (see ../shared/traces/asterisk-22/MANIFEST.md).
"""

from __future__ import annotations

import itertools
import json

import pytest

from tests.conftest import ASTERISK_TRACES
from textback.pbx.asterisk.parser import AmiMessage, AmiParser
from textback.pbx.asterisk.tracker import UNKNOWN_AFTER_RESTART, CallTracker, endpoint_of
from textback.pbx.call_start import CallProgress, CallStart
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig


def events(name: str) -> list[AmiMessage]:
    p = AmiParser()
    return [m for m in p.feed((ASTERISK_TRACES / name).read_bytes()) if m.kind == "event"]


def run(msgs: list[AmiMessage], config: TrackerConfig | None = None) -> tuple[
        list[CallOutcome], CallTracker]:
    t = CallTracker(config)
    out: list[CallOutcome] = []
    for m in msgs:
        t.handle(m)
        out += t.tick()
    out += t.finish()
    return out, t


def ev(**h: str) -> AmiMessage:
    return AmiMessage.from_headers({k.replace("_", "-"): v for k, v in h.items()})


def rewrite(msgs: list[AmiMessage], old: str, new: str) -> list[AmiMessage]:
    return [AmiMessage(m.text.replace(old, new)) for m in msgs]


def test_endpoint_of() -> None:
    assert endpoint_of("PJSIP/trunk-0000001c") == ("PJSIP", "trunk")
    assert endpoint_of("SIP/my-provider-00000a1") == ("SIP", "my-provider")
    assert endpoint_of("Local/101@from-internal-00000012;1") == ("Local", "101@from-internal")


def test_direct_noanswer_one_call_and_no_state_left() -> None:
    out, t = run(events("direct-noanswer.ami"))
    assert [(o.call, o.verdict, o.reason) for o in out] == [("1795395183.0", "missed",
                                                              "noanswer")]
    assert out[0].caller == "+15551230001" and out[0].caller_name == "John Smith"
    assert t.open_calls == 0 and not t._chans and not t._bridges and not t._locals


def test_withheld_caller_number() -> None:
    for token in ("anonymous", "", "unknown", "Restricted", "private", "<unknown>"):
        msgs = rewrite(events("direct-noanswer.ami"), "CallerIDNum: +15551230001",
                       f"CallerIDNum: {token}")
        (o,) = run(msgs)[0]
        assert o.withheld is True and o.caller is None and o.caller_name is None, token
        assert o.verdict == "missed"


def test_restricted_presentation_is_withheld() -> None:
    msgs = events("direct-noanswer.ami")
    nc = next(i for i, m in enumerate(msgs) if m.name == "Newchannel")
    msgs.insert(nc + 1, ev(Event="NewCallerid", Channel="PJSIP/trunk-00000000",
                           CallerIDNum="+15551230001", Uniqueid="1795395183.0",
                           Linkedid="1795395183.0",
                           CID_CallingPres="32 (Presentation Restricted, Not Screened)"))
    (o,) = run(msgs)[0]
    assert o.withheld is True and o.caller is None


def test_duplicate_hangup_unknown_channel_and_unknown_event_are_counted() -> None:
    msgs = events("direct-busy.ami")
    hangup = next(m for m in msgs if m.name == "Hangup")
    msgs.insert(msgs.index(hangup) + 1, hangup)
    msgs.insert(5, ev(Event="Hangup", Uniqueid="999.9", Linkedid="999.9", Channel="X/y"))
    msgs.insert(6, ev(Event="TotallyNewEvent", Foo="bar"))
    out, t = run(msgs)
    assert [(o.verdict, o.reason) for o in out] == [("missed", "busy")]
    assert t.stats.dropped == {"duplicate-hangup": 1, "unknown-channel": 1,
                               "unknown-event": 1}


def test_late_events_never_make_a_second_record() -> None:
    msgs = events("direct-answered.ami")
    t = CallTracker(TrackerConfig(settle_s=2.0))
    out: list[CallOutcome] = []
    for m in msgs:
        t.handle(m, now=100.0)
    out += t.tick(101.0)
    assert out == []  # inside the settle window
    out += t.tick(102.5)
    assert [o.verdict for o in out] == ["answered"]
    for m in msgs:  # the whole call again, late: nothing new
        t.handle(m, now=103.0)
    assert t.tick(200.0) == [] and t.finish() == []
    assert t.stats.dropped["late-event"] > 0


def test_settle_window_folds_late_events_in() -> None:
    msgs = events("voicemail-after-noanswer.ami")
    mw = next(m for m in msgs if m.name == "MessageWaiting")
    vm = next(m for m in msgs if m.get("Variable") == "VMSTATUS")
    msgs = [m for m in msgs if m is not mw and m is not vm]
    t = CallTracker(TrackerConfig(settle_s=2.0))
    for m in msgs:
        t.handle(m, now=10.0)
    # the mailbox notice arrives 1 s after the last hangup, without a channel
    t.handle(ev(Event="MessageWaiting", Mailbox="101@default", Waiting="1", New="1"),
             now=11.0)
    assert t.tick(11.5) == []
    (o,) = t.tick(12.1)
    assert (o.reason, o.voicemail_left) == ("voicemail", True)


def test_voicemail_hangup_during_greeting_is_voicemail_not_left() -> None:
    msgs = [m for m in events("voicemail-after-noanswer.ami") if m.name != "MessageWaiting"]
    msgs = rewrite(msgs, "Value: SUCCESS", "Value: FAILED")
    (o,) = run(msgs)[0]
    assert (o.verdict, o.reason, o.voicemail_left) == ("missed", "voicemail", False)


def test_queue_timeout_without_queuestatus_still_told_apart() -> None:
    """QueueCallerAbandon fires on a timeout too; without VarSet the caller's hang-up decides."""
    no_var = [m for m in events("queue-timeout.ami") if m.name != "VarSet"]
    assert run(no_var)[0][0].reason == "queue-timeout"
    no_var = [m for m in events("queue-abandon.ami") if m.name != "VarSet"]
    assert run(no_var)[0][0].reason == "queue-abandon"


def test_dial_without_dialplan_events_falls_back_to_dialend() -> None:
    for name, reason in (("direct-busy.ami", "busy"), ("direct-noanswer.ami", "noanswer"),
                         ("caller-abandon-long.ami", "abandon")):
        msgs = [m for m in events(name) if m.name not in ("VarSet", "Newexten")]
        assert run(msgs)[0][0].reason == reason, name


def test_cdr_disposition_is_never_the_verdict() -> None:
    msgs = rewrite(events("ivr-hangup.ami"), "Disposition: ANSWERED", "Disposition: ANSWERED")
    assert run(msgs)[0][0].reason == "ivr-abandon"
    no_cdr = [m for m in events("ringgroup-answered.ami") if m.name != "Cdr"]
    assert run(no_cdr)[0][0].verdict == "answered"


def _pickup_sequence() -> list[AmiMessage]:
    trunk = dict(Channel="PJSIP/trunk-00000040", Uniqueid="1795395500.64",
                 Linkedid="1795395500.64")
    leg = dict(Channel="PJSIP/101-00000041", Uniqueid="1795395500.65",
               Linkedid="1795395500.64")
    picker_own = dict(Channel="PJSIP/102-00000042", Uniqueid="1795395502.66",
                      Linkedid="1795395502.66")
    picker = dict(picker_own, Linkedid="1795395500.64")
    return [
        ev(Event="Newchannel", ChannelState="4", ChannelStateDesc="Ring",
           CallerIDNum="+15551230301", CallerIDName="Pick Me", Context="from-trunk",
           Exten="+15559870000", **trunk),
        ev(Event="VarSet", Variable="DIALSTATUS", Value="", **trunk),
        ev(Event="Newchannel", ChannelState="0", ChannelStateDesc="Down", CallerIDNum="101",
           Context="internal", Exten="s", **leg),
        ev(Event="DialBegin", DestUniqueid=leg["Uniqueid"], DestChannel=leg["Channel"],
           DialString="101", **trunk),
        ev(Event="Newchannel", ChannelState="4", ChannelStateDesc="Ring", CallerIDNum="102",
           Context="internal", Exten="**101", **picker_own),
        ev(Event="Newexten", Application="PickupChan", AppData="PJSIP/101", **picker_own),
        ev(Event="Newstate", ChannelStateDesc="Up", **picker),  # moved into the call
        ev(Event="Hangup", Cause="26", **leg),
        ev(Event="BridgeEnter", BridgeUniqueid="b-1", **picker),
        ev(Event="BridgeEnter", BridgeUniqueid="b-1", **trunk),
        ev(Event="VarSet", Variable="DIALSTATUS", Value="ANSWER", **trunk),
        ev(Event="Hangup", Cause="16", **picker),
        ev(Event="Hangup", Cause="16", **trunk),
    ]


def test_directed_pickup_is_one_answered_call() -> None:
    out, t = run(_pickup_sequence())
    assert [(o.call, o.direction, o.verdict) for o in out] == [
        ("1795395500.64", "inbound", "answered")]
    assert t.open_calls == 0


def test_blind_transfer_that_rings_out_stays_answered() -> None:
    msgs = events("direct-answered.ami")
    last_hangup = max(i for i, m in enumerate(msgs) if m.name == "Hangup")
    msgs.insert(last_hangup, ev(Event="VarSet", Variable="DIALSTATUS", Value="NOANSWER",
                                Channel="PJSIP/trunk-00000010", Uniqueid="1795395247.16",
                                Linkedid="1795395247.16"))
    (o,) = run(msgs)[0]
    assert (o.verdict, o.reason, o.connected) == ("answered", "answered", True)


def test_outbound_call_records_callee_and_internal_is_ignored() -> None:
    (o,) = run(events("outbound-noanswer.ami"))[0]
    assert (o.direction, o.verdict, o.reason, o.callee) == (
        "outbound", "ignored", "outbound", "+15557770016")
    (i,) = run(events("internal-noanswer.ami"))[0]
    assert (i.direction, i.verdict, i.caller) == ("internal", "ignored", "102")


def test_trunk_endpoint_config_without_trunk_context() -> None:
    msgs = rewrite(events("direct-noanswer.ami"), "Context: from-trunk", "Context: carrier-in")
    assert run(msgs)[0][0].direction == "internal"
    cfg = TrackerConfig(trunk_endpoints=("PJSIP/trunk",))
    assert run(msgs, cfg)[0][0].direction == "inbound"


def test_resync_finalises_vanished_calls_once_and_adopts_new_ones() -> None:
    msgs = events("ringgroup-noanswer.ami")
    cut = next(i for i, m in enumerate(msgs) if m.name == "DialEnd")
    t = CallTracker(TrackerConfig(settle_s=1.0))
    for m in msgs[:cut]:
        t.handle(m, now=50.0)
    t.resync_begin()
    t.resync_channel(ev(Event="CoreShowChannel", Channel="PJSIP/trunk-00000090",
                        Uniqueid="1795395600.90", Linkedid="1795395600.90",
                        Context="route-queue", ChannelStateDesc="Up", Application="Queue",
                        BridgeId="", Duration="00:00:03"))
    out = t.resync_end()
    assert out == []
    out = t.tick(60.0)
    assert [(o.call, o.extra.get("resynced")) for o in out] == [("1795395222.8", True)]
    # the adopted call: its trunk endpoint was learned from the first call
    t.handle(ev(Event="Hangup", Channel="PJSIP/trunk-00000090", Uniqueid="1795395600.90",
                Linkedid="1795395600.90"), now=61.0)
    (adopted,) = t.tick(70.0)
    assert (adopted.direction, adopted.reason) == ("inbound", "queue-abandon")
    t.resync_begin()
    assert t.resync_end() == [] and t.finish() == []


# ---------------------------------------------------------------- across a restart
# The daemon is killed mid-call and restarted. The CoreShowChannel events below are built
# from the capture's own events up to the cut, with the headers Asterisk 22 sends in that
# event (as textback.testing.fake_ami does): each live channel's *current* Context/Exten.

def show_channels(msgs: list[AmiMessage]) -> list[AmiMessage]:
    live: dict[str, dict[str, str]] = {}
    for m in msgs:
        uid = m.get("Uniqueid") or ""
        if m.name == "Newchannel":
            live[uid] = {"Application": "", "ApplicationData": ""}
        if uid not in live:
            continue
        if m.name == "Hangup":
            del live[uid]
            continue
        h = live[uid]
        for key in ("Channel", "ChannelStateDesc", "CallerIDNum", "CallerIDName", "Context",
                    "Exten", "Linkedid"):
            if m.get(key):
                h[key] = m.get(key) or ""
        if m.name == "Newexten":
            h["Application"], h["ApplicationData"] = m.get("Application") or "", \
                m.get("AppData") or ""
    return [ev(Event="CoreShowChannel", Uniqueid=uid, Duration="00:00:02", BridgeId="", **h)
            for uid, h in live.items()]


def before_restart(msgs: list[AmiMessage], cut: int) -> list[CallStart]:
    """What the killed daemon reported (and its store kept) from ``msgs[:cut]``."""
    t = CallTracker(TrackerConfig(settle_s=1.0))
    reported: list[CallStart] = []
    t.on_call_started = reported.append
    for m in msgs[:cut]:
        t.handle(m, now=100.0)
        t.tick(100.0)
    kept = {s.call: s for s in reported}  # the store keeps the latest per call
    return list(kept.values())


def after_restart(msgs: list[AmiMessage], cut: int, seed: list[CallStart] | None,
                  listed: bool = True) -> list[CallOutcome]:
    t = CallTracker(TrackerConfig(settle_s=1.0))
    t.on_call_started = lambda s: None
    if seed is not None:
        assert t.seed(seed) == len(seed)
    t.resync_begin()
    for m in show_channels(msgs[:cut]) if listed else []:
        t.resync_channel(m)
    out = t.resync_end()
    if listed:
        for m in msgs[cut:]:
            t.handle(m, now=120.0)
            out += t.tick(120.0)
    return out + t.tick(130.0) + t.finish()


def test_inbound_call_reported_at_newchannel_then_as_evidence_changes() -> None:
    msgs = events("direct-noanswer.ami")
    t = CallTracker()
    reported: list[CallStart] = []
    t.on_call_started = reported.append
    newchannel = next(i for i, m in enumerate(msgs) if m.name == "Newchannel")
    for m in msgs[:newchannel + 1]:
        t.handle(m)
    (first,) = reported
    assert (first.call, first.trunk_uid, first.trunk_channel, first.caller_raw,
            first.caller_name, first.did_raw, first.pbx) == (
        "1795395183.0", "1795395183.0", "PJSIP/trunk-00000000", "+15551230001",
        "John Smith", "+15559870000", "asterisk")
    assert first.progress == CallProgress()
    out: list[CallOutcome] = []
    for m in msgs[newchannel + 1:]:
        t.handle(m)
        out += t.tick()
    out += t.finish()
    assert [o.verdict for o in out] == ["missed"]
    assert all(s.call == first.call for s in reported) and len(reported) >= 2
    last = reported[-1].progress
    assert last.stage == "dial" and last.dialend == ("NOANSWER",)
    assert last.ring_end is not None and not last.person
    # changes only: no two consecutive reports carry the same progress
    assert all(a.progress != b.progress for a, b in itertools.pairwise(reported))


def test_internal_and_outbound_calls_are_never_reported() -> None:
    for name, old, new in (("direct-noanswer.ami", "Context: from-trunk",
                            "Context: carrier-in"), ("internal-noanswer.ami", "", ""),
                           ("outbound-noanswer.ami", "", "")):
        t = CallTracker()
        reported: list[CallStart] = []
        t.on_call_started = reported.append
        for m in rewrite(events(name), old, new) if old else events(name):
            t.handle(m)
            t.tick()
        t.finish()
        assert reported == [], name


def test_call_in_progress_at_restart_keeps_direction_caller_and_did() -> None:
    msgs = events("direct-noanswer.ami")
    cut = next(i for i, m in enumerate(msgs) if m.name == "DialBegin") + 2
    # the bug: from CoreShowChannels alone the trunk channel is in route-direct, s
    (bare,) = after_restart(msgs, cut, None)
    assert (bare.direction, bare.did) == ("internal", None)
    seed = before_restart(msgs, cut)
    assert [s.did_raw for s in seed] == ["+15559870000"]
    (o,) = after_restart(msgs, cut, seed)
    assert (o.direction, o.verdict, o.reason, o.caller, o.did, o.caller_name) == (
        "inbound", "missed", "noanswer", "+15551230001", "+15559870000", "John Smith")
    assert o.extra == {"resynced": True, "restored": True}
    assert o.started_at == seed[0].started_at


def test_call_that_ended_while_down_is_missed_only_on_evidence() -> None:
    msgs = events("direct-noanswer.ami")
    dialend = next(i for i, m in enumerate(msgs) if m.name == "DialEnd")
    # we saw Dial NOANSWER before going down: missed, as far as known
    (o,) = after_restart(msgs, dialend + 1, before_restart(msgs, dialend + 1), listed=False)
    assert (o.direction, o.verdict, o.reason, o.did) == (
        "inbound", "missed", "noanswer", "+15559870000")
    assert o.ring_s >= 0 and o.extra == {"resynced": True, "restored": True}
    # we saw it ringing only: someone may have answered; never texted
    (o,) = after_restart(msgs, dialend, before_restart(msgs, dialend), listed=False)
    assert (o.direction, o.verdict, o.reason, o.caller, o.did) == (
        "inbound", "ignored", UNKNOWN_AFTER_RESTART, "+15551230001", "+15559870000")
    # a Dial leg reported an answer whose bridge we never saw: not missed
    answered = rewrite(msgs, "DialStatus: NOANSWER", "DialStatus: ANSWER")
    (o,) = after_restart(answered, dialend + 1, before_restart(answered, dialend + 1),
                         listed=False)
    assert (o.verdict, o.reason) == ("ignored", UNKNOWN_AFTER_RESTART)


def test_seed_skips_known_decided_and_foreign_calls() -> None:
    msgs = events("direct-noanswer.ami")
    (start,) = before_restart(msgs, next(i for i, m in enumerate(msgs)
                                         if m.name == "DialBegin"))
    t = CallTracker()
    assert t.seed([start, start]) == 1  # the second is already known
    assert t.open_calls == 1
    fs = CallStart(call="x", pbx="freeswitch", started_at=1.0, trunk_uid="x",
                   trunk_channel="sofia/external/x")
    assert t.seed([fs]) == 0
    t.resync_begin()
    (o,) = t.resync_end() + t.tick(10.0)
    assert o.call == start.call
    assert t.seed([start]) == 0  # decided: never a second record


def test_call_start_record_round_trip() -> None:
    msgs = events("direct-noanswer.ami")
    (start,) = before_restart(msgs, next(i for i, m in enumerate(msgs)
                                         if m.name == "DialEnd") + 1)
    back = CallStart.from_record(json.loads(json.dumps(start.to_record())))
    assert back == start
    with pytest.raises(ValueError, match="trunk_uid"):
        CallStart.from_record({"call": "1", "pbx": "asterisk", "started_at": 1.0})
