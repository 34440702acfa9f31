"""FsCallTracker on real capture events, and on variants derived from them.

No IVR, queue or anonymous capture is shared (they are hold-outs), so those behaviours are
tested on real events edited the way the manifest describes them (each edit says what and
why); the callcenter::info headers follow mod_callcenter's member-queue-end event.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import FREESWITCH_TRACES
from textback.pbx.freeswitch.client import SUBSCRIBED_EVENTS
from textback.pbx.freeswitch.parser import EslEvent, decode_event, iter_frames
from textback.pbx.freeswitch.tracker import FsCallTracker
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import TrackerConfig


def events(name: str) -> list[EslEvent]:
    out = []
    for f in iter_frames((FREESWITCH_TRACES / name).read_bytes()):
        if f.is_event:
            ev = decode_event(f)
            assert ev is not None
            out.append(ev)
    return out


def run(evs: list[EslEvent], config: TrackerConfig | None = None) -> list[CallOutcome]:
    t = FsCallTracker(config or TrackerConfig())
    out: list[CallOutcome] = []
    for ev in evs:
        out += t.handle(ev)
    return out + t.finish()


def edit(evs: list[EslEvent], fn: Callable[[dict[str, str]], None]) -> list[EslEvent]:
    res = []
    for ev in evs:
        h = {k: ev.get(k) or "" for k in ev.headers}
        fn(h)
        res.append(EslEvent(name=h.get("Event-Name", ev.name), headers=h, body=ev.body))
    return res


def test_subscribed_subset_decides_like_all_events() -> None:
    wanted = set(SUBSCRIBED_EVENTS.split())
    for name in ("ringgroup-answered.esl", "voicemail-after-noanswer.esl",
                 "concurrent-mixed.esl", "caller-abandon.esl", "outbound-noanswer.esl"):
        evs = events(name)
        sub = [e for e in evs if e.name in wanted and (e.name != "CUSTOM" or e.subclass in wanted)]
        assert len(sub) < len(evs)
        assert run(sub) == run(evs)


def test_withheld_anonymous_caller() -> None:
    # what a From of anonymous@anonymous.invalid gives: the number reads "anonymous"
    def anon(h: dict[str, str]) -> None:
        for k in ("Caller-Caller-ID-Number", "Caller-ANI", "Caller-Orig-Caller-ID-Number"):
            if h.get(k) == "+15552220001":
                h[k] = "anonymous"
    (o,) = run(edit(events("direct-noanswer.esl"), anon))
    assert o.withheld and o.caller is None and o.caller_name is None
    assert (o.verdict, o.reason) == ("missed", "noanswer")


def test_hide_number_with_a_real_number_is_withheld() -> None:
    # anonymous-pai per the manifest: PAI number in Caller-Caller-ID-Number, Hide-Number true
    def pai(h: dict[str, str]) -> None:
        if "Caller-Privacy-Hide-Number" in h:
            h["Caller-Privacy-Hide-Number"] = "true"
    (o,) = run(edit(events("direct-noanswer.esl"), pai))
    assert o.withheld is True and o.caller is None


def _ivr_from_voicemail() -> list[EslEvent]:
    """voicemail-after-noanswer minus the bridge and the voicemail: the PBX answers and
    plays prompts, the caller hangs up (no originate_disposition: no bridge attempted)."""
    a = "84d45607-f316-40da-801c-7d3290e58aca"
    out = []
    for ev in events("voicemail-after-noanswer.esl"):
        if ev.get("Unique-ID") not in (a, None) or ev.name in ("CUSTOM", "MESSAGE_WAITING"):
            continue
        h = {k: ev.get(k) or "" for k in ev.headers}
        for k in ("variable_originate_disposition", "variable_DIALSTATUS",
                  "variable_voicemail_message_len", "variable_originate_failed_cause",
                  "variable_last_bridge_hangup_cause"):
            h.pop(k, None)
        for k in ("variable_current_application", "variable_last_app"):
            if k in h:
                h[k] = "play_and_get_digits"
        out.append(EslEvent(name=ev.name, headers=h))
    return out


def test_ivr_answer_is_not_a_person() -> None:
    (o,) = run(_ivr_from_voicemail())
    assert (o.verdict, o.reason, o.connected) == ("missed", "ivr-abandon", False)


def _queue(cause: str, reason: str) -> list[EslEvent]:
    evs = _ivr_from_voicemail()
    a = evs[0].get("Unique-ID") or ""
    hang = next(i for i, e in enumerate(evs) if e.name == "CHANNEL_HANGUP_COMPLETE")
    cc = EslEvent(name="CUSTOM", headers={
        "Event-Name": "CUSTOM", "Event-Subclass": "callcenter::info",
        "Event-Date-Timestamp": evs[hang].get("Event-Date-Timestamp") or "0",
        "Unique-ID": a, "CC-Queue": "support@default", "CC-Action": "member-queue-end",
        "CC-Cause": cause, "CC-Cancel-Reason": reason, "CC-Member-Session-UUID": a})
    return [*evs[:hang], cc, *evs[hang:]]


def test_queue_abandon_and_timeout() -> None:
    (o,) = run(_queue("Cancel", "NONE"))
    assert (o.verdict, o.reason) == ("missed", "queue-abandon")
    (o,) = run(_queue("Cancel", "BREAK_OUT"))
    assert o.reason == "queue-abandon"
    (o,) = run(_queue("Cancel", "TIMEOUT"))
    assert o.reason == "queue-timeout"
    (o,) = run(_queue("Cancel", "NO_AGENT_TIMEOUT"))
    assert o.reason == "queue-timeout"


def test_late_message_waiting_folds_in_within_settle() -> None:
    evs = events("voicemail-after-noanswer.esl")
    vm = [e for e in evs if e.name == "CUSTOM" and e.subclass == "vm::maintenance"]
    mwi = [e for e in evs if e.name == "MESSAGE_WAITING"]
    rest = [e for e in evs if e not in vm and e not in mwi]
    # without vm::maintenance and without the message length, only MWI says a message was left
    rest = edit(rest, lambda h: h.pop("variable_voicemail_message_len", None))
    (o,) = run(rest)
    assert (o.reason, o.voicemail_left) == ("voicemail", False)
    t = FsCallTracker(TrackerConfig(settle_s=2.0))
    out: list[CallOutcome] = []
    for ev in rest:
        out += t.handle(ev, now=100.0)
    assert out == []  # all legs gone, still settling
    out += t.handle(mwi[0], now=101.0)
    out += t.tick(102.5)
    (o,) = out
    assert o.voicemail_left and t.open_calls == 0


def test_settle_window_and_no_second_decision() -> None:
    evs = events("direct-busy.esl")
    t = FsCallTracker(TrackerConfig(settle_s=2.0))
    out: list[CallOutcome] = []
    for ev in evs:
        out += t.handle(ev, now=10.0)
    assert out == [] and t.open_calls == 1
    assert t.tick(11.9) == []
    (o,) = t.tick(12.0)
    assert o.reason == "busy" and t.open_calls == 0
    # the same events again (a replayed buffer after reconnect): nothing new, nothing kept
    again = [x for ev in evs for x in t.handle(ev, now=20.0)] + t.tick(30.0) + t.finish()
    assert again == [] and t.open_calls == 0
    assert t.stats.dropped.get("event-for-decided-call", 0) > 0


def test_hangup_complete_alone_is_enough() -> None:
    """Joining mid-call (no CHANNEL_CREATE seen): the hangup events carry every variable."""
    for name, reason in (("direct-noanswer.esl", "noanswer"), ("direct-answered.esl", "answered"),
                         ("caller-abandon.esl", "abandon"), ("unavailable.esl", "unavailable")):
        only = [e for e in events(name) if e.name == "CHANNEL_HANGUP_COMPLETE"]
        (o,) = [x for x in run(only) if x.direction == "inbound"]
        assert o.reason == reason, name


def test_external_profile_is_configurable() -> None:
    evs = events("direct-noanswer.esl")
    (o,) = run(evs, TrackerConfig(external_profiles=("carrier",), external_contexts=("from-pstn",)))
    assert o.direction == "internal" and o.verdict == "ignored"


def test_resync_closes_legs_that_ended_while_away() -> None:
    evs = events("direct-noanswer.esl")
    upto = next(i for i, e in enumerate(evs) if e.name == "CHANNEL_HANGUP")
    t = FsCallTracker(TrackerConfig(settle_s=1.0))
    for ev in evs[:upto]:
        assert t.handle(ev, now=5.0) == []
    known = t.known_legs()
    assert len(known) == 2
    assert t.resync([], [], now=50.0, known_before=known) == []
    (o,) = t.tick(51.0)
    assert o.call == "94ef8245-1c0b-4a3e-8e4d-e3f333514ddc" and o.verdict == "missed"


def test_resync_adopts_unknown_calls_and_bridges() -> None:
    """Rows shaped like ``show channels as json`` / ``show calls as json`` for the a-leg and
    b-leg of direct-answered.esl (values copied from its CHANNEL_CREATE events)."""
    a, b = "e61d5c3c-fc43-4d23-bd23-4d9054d3c09c", "f382f6c9-0000-4000-8000-000000000001"
    chans = [{"uuid": a, "direction": "inbound", "name": "sofia/external/+15552220006@127.0.0.1",
              "cid_num": "+15552220006", "cid_name": "FRANK CALLER", "dest": "+15559870000",
              "context": "public", "created_epoch": "1795394892", "callstate": "ACTIVE",
              "call_uuid": a},
             {"uuid": b, "direction": "outbound", "name": "sofia/internal/101@127.0.0.1:5071",
              "cid_num": "+15552220006", "dest": "101", "context": "default",
              "created_epoch": "1795394892", "callstate": "ACTIVE", "call_uuid": a}]
    calls = [dict(chans[0], b_uuid=b, b_name=chans[1]["name"])]
    t = FsCallTracker(TrackerConfig(settle_s=0.5))
    assert t.resync(chans, calls, now=1.0) == []
    assert t.open_calls == 1
    t.resync([], [], now=2.0)
    (o,) = t.tick(3.0)
    assert (o.call, o.direction, o.verdict, o.caller, o.did) == (
        a, "inbound", "answered", "+15552220006", "+15559870000")
