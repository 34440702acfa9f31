"""FreeSWITCH call tracker: a pure state machine from ESL events to one outcome per call.

What the real captures (../shared/traces/freeswitch-1.10/MANIFEST.md) teach, and why the
code looks the way it does:

* A call is the customer's a-leg plus every leg it spawned. b-legs name their parent in
  ``Other-Leg-Unique-ID`` (only when ``Other-Type: originator``; on the a-leg the same
  header points at a b-leg), ``variable_originator`` or ``variable_originating_leg_uuid``;
  mod_callcenter agent legs only in ``variable_cc_member_session_uuid`` or the
  callcenter::info events. ``Channel-Call-UUID`` flips between legs: never used.
* The a-leg's Hangup-Cause is NORMAL_CLEARING whether or not anyone answered, and its
  CHANNEL_ANSWER may be the PBX itself (IVR, queue, voicemail). A person answered only when
  the a-leg was bridged (CHANNEL_BRIDGE, ``bridge_epoch`` != 0), ``originate_disposition``
  / ``DIALSTATUS`` is SUCCESS, a (non-loopback) b-leg answered, or mod_callcenter bridged
  an agent. A ring group's losing legs end LOSE_RACE and say nothing about the call.
* A call is final ``settle_s`` after its last leg is gone, so late events (MESSAGE_WAITING,
  callcenter::info) fold in; then its state is dropped, keeping only its leg ids in a
  bounded set so a late or replayed event can never open (and decide) it a second time.

* Bounded: a call still open ``max_call_age_s`` after we first saw it is given up
  (``ignored``/``expired``) from an expiry heap (lazy deletion), so ticks and events cost
  nothing per open call; a call keeps at most ``MAX_LEGS_PER_CALL`` legs (gone ones are
  forgotten first, as tombstones).

The tracker never reads a clock: ``now`` comes from the caller (live: the wall clock, the
one event epochs are in) or, when None, from the events' ``Event-Date-Timestamp`` (replay
decides exactly as the live run did).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from textback.numbers import is_withheld_number, normalise_caller
from textback.pbx.outcome import CallOutcome, Direction
from textback.pbx.stream import EXPIRED, StreamStats, TrackerConfig, earliest_due

# Events the tracker reads; everything else is skipped before it is even decoded.
TRACKED_EVENTS = frozenset(
    {
        "CHANNEL_CREATE",
        "CHANNEL_ANSWER",
        "CHANNEL_BRIDGE",
        "CHANNEL_UNBRIDGE",
        "CHANNEL_HANGUP_COMPLETE",
        "CHANNEL_DESTROY",
        "CUSTOM",
        "MESSAGE_WAITING",
    }
)
TRACKED_SUBCLASSES = frozenset({"callcenter::info", "vm::maintenance"})

NOANSWER = frozenset({"NO_ANSWER", "NOANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT",
                      "RECOVERY_ON_TIMER_EXPIRE", "PROGRESS_TIMEOUT"})
BUSY = frozenset({"USER_BUSY", "BUSY", "CALL_REJECTED", "DECLINE"})
ABANDON = frozenset({"ORIGINATOR_CANCEL", "CANCEL"})
UNAVAILABLE = frozenset({
    "USER_NOT_REGISTERED", "SUBSCRIBER_ABSENT", "UNALLOCATED_NUMBER", "NO_ROUTE_DESTINATION",
    "NO_ROUTE_TRANSIT_NET", "DESTINATION_OUT_OF_ORDER", "CHANUNAVAIL", "NETWORK_OUT_OF_ORDER",
    "NORMAL_TEMPORARY_FAILURE", "INVALID_NUMBER_FORMAT", "INCOMPATIBLE_DESTINATION",
    "SWITCH_CONGESTION", "NORMAL_CIRCUIT_CONGESTION", "CONGESTION", "FACILITY_NOT_SUBSCRIBED",
    "SERVICE_UNAVAILABLE", "EXCHANGE_ROUTING_ERROR", "GATEWAY_DOWN", "MEDIA_TIMEOUT",
    "REQUESTED_CHAN_UNAVAIL", "BEARERCAPABILITY_NOTAVAIL", "INVALIDARGS",
})
QUEUE_TIMEOUT_REASONS = frozenset({"TIMEOUT", "NO_AGENT_TIMEOUT"})
TOMBSTONES = 8192  # leg ids of decided calls remembered (bounded: ~0.7 MB at most)
# Legs one call keeps (a ring group of 100 phones is ~100): gone legs are forgotten first.
MAX_LEGS_PER_CALL = 256
MAX_CAUSES_PER_CALL = 16
# Calls ended and waiting out settle_s. Live, that is the calls ending within settle_s (a few);
# with a clock that does not move (a replay whose events repeat the same times), they would
# pile up until the end: past this many, the oldest are decided at once.
MAX_SETTLING = 4096


class EventLike(Protocol):
    """What the tracker needs from an event (``EslEvent`` or a test double)."""

    name: str

    def get(self, key: str, default: str | None = None) -> str | None: ...


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "yes", "1")


def _safe_text(value: str | None, max_len: int = 80) -> str | None:
    """Display text from the outside world without control characters (CR, LF, ESC...)."""
    if not value:
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    return cleaned[:max_len] or None


def _micros(value: str | None) -> float | None:
    """An ESL microsecond time header (``0`` or absent: never happened) in seconds."""
    if value and value.isdigit() and value != "0":
        return int(value) / 1e6
    return None


def _profile_of(ev: EventLike) -> str | None:
    prof = ev.get("variable_sofia_profile_name")
    if prof:
        return prof
    name = ev.get("Channel-Name") or ""
    if name.startswith("sofia/"):
        return name.split("/", 2)[1]
    return None


@dataclass(slots=True)
class _Leg:
    uuid: str
    call: _Call
    gone: bool = False
    outbound: bool = False
    profile: str | None = None
    dest: str | None = None
    loopback: bool = False
    answered_at: float | None = None
    ended_at: float | None = None


@dataclass(slots=True)
class _Call:
    root: str
    legs: dict[str, _Leg] = field(default_factory=dict)
    a_seen: bool = False
    call_direction: str | None = None
    profile: str | None = None
    context: str | None = None
    sip_authorized: bool = False
    caller_num: str | None = None
    caller_name: str | None = None
    hide_number: bool = False
    did: str | None = None
    a_dest: str | None = None
    created_at: float | None = None
    last_seen: float = 0.0
    a_answered_at: float | None = None
    person_at: float | None = None
    person: bool = False
    disposition: str | None = None
    hangup_cause: str | None = None
    sip_hangup: str | None = None
    last_app: str | None = None
    queue: bool = False
    queue_timeout: bool = False
    voicemail: bool = False
    vm_left: bool = False
    vm_box: str | None = None
    ended_at: float | None = None
    ring_end: float | None = None
    gone_at: float | None = None
    ext_out_dest: str | None = None
    ext_out_answered: bool = False
    # distinct b-leg hangup causes; a tuple: the empty one costs nothing, a set 216 bytes
    b_causes: tuple[str, ...] = ()
    expires_at: float = 0.0


class FsCallTracker:
    """ESL events in, ``CallOutcome`` out. One instance lives across reconnects."""

    def __init__(self, config: TrackerConfig | None = None,
                 stats: StreamStats | None = None) -> None:
        self.config = config or TrackerConfig()
        self.stats = stats if stats is not None else StreamStats()
        self._legs: dict[str, _Leg] = {}
        self._calls: dict[str, _Call] = {}
        self._settling: list[tuple[float, str]] = []
        self._done: OrderedDict[str, None] = OrderedDict()
        self._clock = 0.0
        # (expires_at, root) of open calls; stale entries skipped when popped, swept when
        # they outnumber the open calls
        self._expiry: list[tuple[float, str]] = []
        # calls that reached voicemail: what a MESSAGE_WAITING is matched against
        self._vm_calls: dict[str, _Call] = {}

    # -- introspection -------------------------------------------------------------------
    @property
    def open_calls(self) -> int:
        return len(self._calls)

    def open_call_ids(self) -> list[str]:
        return list(self._calls)

    def is_decided(self, uuid: str) -> bool:
        return uuid in self._done

    # -- clock ---------------------------------------------------------------------------
    @staticmethod
    def event_time(ev: EventLike) -> float | None:
        raw = ev.get("Event-Date-Timestamp")
        if raw and raw.isdigit():
            return int(raw) / 1e6
        return None

    def _advance(self, now: float | None, ev: EventLike | None) -> float:
        """The event's own time; the settle clock moves with ``now`` (live) or it (replay)."""
        t = self.event_time(ev) if ev is not None else None
        if now is not None:
            self._clock = max(self._clock, now)
        elif t is not None:
            self._clock = max(self._clock, t)
        return t if t is not None else self._clock

    # -- legs and calls ------------------------------------------------------------------
    @staticmethod
    def _parent_of(ev: EventLike, uuid: str) -> str | None:
        parent = None
        if ev.get("Other-Type") == "originator":
            parent = ev.get("Other-Leg-Unique-ID")
        parent = (parent or ev.get("variable_originator")
                  or ev.get("variable_originating_leg_uuid")
                  or ev.get("variable_cc_member_session_uuid")
                  # the b side of a loopback pair runs the dialplan as an inbound channel of
                  # its own; mod_loopback names the channel that dialled loopback/ in
                  # other_loopback_from_uuid, and the pair's a side in other_loopback_leg_uuid
                  or ev.get("variable_other_loopback_from_uuid")
                  or (ev.get("variable_other_loopback_leg_uuid")
                      if ev.get("variable_loopback_leg") == "B" else None))
        return parent if parent and parent != uuid else None

    def _new_call(self, root: str) -> _Call:
        call = _Call(root=root, expires_at=self._clock + self.config.max_call_age_s)
        self._calls[root] = call
        heap = self._expiry
        if len(heap) > 2 * len(self._calls) + 1024:
            heap[:] = [(c.expires_at, r) for r, c in self._calls.items()]
            heapq.heapify(heap)
        else:
            heapq.heappush(heap, (call.expires_at, root))
        leg = _Leg(uuid=root, call=call)
        call.legs[root] = leg
        self._legs[root] = leg
        return call

    def _leg_for(self, uuid: str, parent: str | None) -> _Leg | None:
        """The leg ``uuid``, created (and attached to its parent's call) when new."""
        leg = self._legs.get(uuid)
        if leg is not None:
            # A leg that started its own call names a parent: it was an originated leg seen
            # before its parent (adopt it). A call that arrived on its own (inbound) is never
            # made the child of a leg we have not seen: after uuid_bridge (att_xfer, a
            # transfer) the customer's a-leg names the leg it is now bridged to as its
            # "originator", and that leg's own events may have been missed.
            if parent and leg.call.root == uuid and parent not in leg.call.legs and (
                    parent in self._legs or leg.outbound):
                self._adopt(leg.call, parent)
            return self._legs.get(uuid)
        if uuid in self._done:
            self.stats.drop("event-for-decided-call")
            return None
        if parent is None:
            return self._new_call(uuid).legs[uuid]
        if parent in self._done:
            self._remember(uuid)
            self.stats.drop("event-for-decided-call")
            return None
        pleg = self._legs.get(parent)
        call = pleg.call if pleg is not None else self._new_call(parent)
        if len(call.legs) >= MAX_LEGS_PER_CALL and not self._evict_gone(call):
            self._remember(uuid)
            self.stats.drop("leg-cap")
            return None
        leg = _Leg(uuid=uuid, call=call)
        call.legs[uuid] = leg
        self._legs[uuid] = leg
        call.gone_at = None
        return leg

    def _evict_gone(self, call: _Call) -> bool:
        """Forget the call's gone legs (never its a-leg; each kept as a tombstone, so a late
        event for it is dropped); True if the call is now under the cap."""
        for uuid, leg in list(call.legs.items()):
            if leg.gone and uuid != call.root:
                del call.legs[uuid]
                if self._legs.get(uuid) is leg:
                    del self._legs[uuid]
                self._remember(uuid)
        return len(call.legs) < MAX_LEGS_PER_CALL

    def _adopt(self, child: _Call, parent_uuid: str) -> None:
        """A leg that looked like its own call turns out to belong to ``parent_uuid``'s
        (a callcenter agent leg tied by a later event): merge it in."""
        if parent_uuid in self._done:
            return
        pleg = self._legs.get(parent_uuid)
        parent = pleg.call if pleg is not None else self._new_call(parent_uuid)
        if parent is child:
            return
        for uuid, leg in child.legs.items():
            leg.call = parent
            parent.legs[uuid] = leg
            if leg.outbound and leg.profile in self.config.external_profiles:
                parent.ext_out_dest = parent.ext_out_dest or leg.dest
                parent.ext_out_answered |= leg.answered_at is not None
        parent.person |= child.person
        if child.person_at is not None and parent.person_at is None:
            parent.person_at = child.person_at
        if any(not leg.gone for leg in parent.legs.values()):
            parent.gone_at = None
        del self._calls[child.root]
        self._vm_calls.pop(child.root, None)

    def _remember(self, uuid: str) -> None:
        self._done[uuid] = None
        if len(self._done) > TOMBSTONES:
            self._done.popitem(last=False)

    # -- events --------------------------------------------------------------------------
    def handle(self, ev: EventLike, now: float | None = None) -> list[CallOutcome]:
        """Apply one event; return the calls that became final."""
        self.stats.events += 1
        name = ev.name
        t = self._advance(now, ev)
        if name == "CUSTOM":
            sub = ev.get("Event-Subclass") or ""
            if sub == "callcenter::info":
                self._on_callcenter(ev, t)
            elif sub == "vm::maintenance":
                self._on_voicemail(ev)
        elif name == "MESSAGE_WAITING":
            self._on_mwi(ev)
        elif name.startswith("CHANNEL_"):
            self._on_channel(name, ev, t)
        return self._due()

    def _on_channel(self, name: str, ev: EventLike, t: float) -> None:
        uuid = ev.get("Unique-ID")
        if not uuid:
            self.stats.drop("channel-event-without-uuid")
            return
        leg = self._leg_for(uuid, self._parent_of(ev, uuid))
        if leg is None:
            return
        call = leg.call
        call.last_seen = t
        is_a = uuid == call.root
        if leg.profile is None:
            leg.profile = _profile_of(ev)
            leg.outbound = ev.get("Call-Direction") == "outbound"
            leg.dest = ev.get("Caller-Destination-Number")
            leg.loopback = (ev.get("Channel-Name") or "").startswith("loopback/")
            if (not is_a and leg.outbound and leg.profile in self.config.external_profiles
                    and call.ext_out_dest is None):
                call.ext_out_dest = leg.dest
        if is_a:
            self._a_facts(call, ev, t)
        if name == "CHANNEL_ANSWER":
            if leg.answered_at is None:
                leg.answered_at = t
            if is_a:
                call.a_answered_at = call.a_answered_at or t
            elif not leg.loopback:
                self._person(call, t)
                if leg.outbound and leg.profile in self.config.external_profiles:
                    call.ext_out_answered = True
        elif name == "CHANNEL_BRIDGE":
            other = ev.get("Other-Leg-Channel-Name") or ev.get("Bridge-B-Unique-ID") or ""
            if not other.startswith("loopback/"):
                self._person(call, t)
            b = ev.get("Other-Leg-Unique-ID")
            if b and b in self._legs and self._legs[b].call is not call:
                self._adopt(self._legs[b].call, call.root)
        elif name in ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"):
            if name == "CHANNEL_HANGUP_COMPLETE":
                self._hangup_facts(call, leg, ev, t, is_a)
            if not leg.gone:
                leg.gone = True
                leg.ended_at = leg.ended_at or t
                if not is_a and leg.ended_at is not None:
                    call.ring_end = max(call.ring_end or 0.0, leg.ended_at)
                self._maybe_settle(call)

    def _a_facts(self, call: _Call, ev: EventLike, t: float) -> None:
        if not call.a_seen:
            num = ev.get("Caller-Caller-ID-Number")
            if num is None:
                return
            call.a_seen = True
            call.call_direction = ev.get("Call-Direction")
            call.profile = _profile_of(ev)
            call.context = ev.get("Caller-Context")
            call.caller_num = num
            call.caller_name = ev.get("Caller-Caller-ID-Name")
            call.a_dest = ev.get("Caller-Destination-Number")
            call.did = call.a_dest or ev.get("variable_sip_req_user")
            created = ev.get("Caller-Channel-Created-Time")
            call.created_at = (int(created) / 1e6 if created and created.isdigit()
                               and created != "0" else t)
        if _truthy(ev.get("Caller-Privacy-Hide-Number")):
            call.hide_number = True
        if _truthy(ev.get("variable_sip_authorized")):
            call.sip_authorized = True

    def _person(self, call: _Call, t: float) -> None:
        """A person answered at ``t``; the earliest such moment ends the ring (the hang-up
        events that also prove it may come first and carry later times)."""
        call.person = True
        if call.person_at is None or t < call.person_at:
            call.person_at = t

    def _hangup_facts(self, call: _Call, leg: _Leg, ev: EventLike, t: float, is_a: bool) -> None:
        hang = ev.get("Caller-Channel-Hangup-Time")
        end = int(hang) / 1e6 if hang and hang.isdigit() and hang != "0" else t
        leg.ended_at = end
        if not is_a:
            if leg.loopback:
                # a follow-me's voicemail runs inside the loopback: its b side has the app
                self._voicemail_facts(call, ev)
            answered = _micros(ev.get("Caller-Channel-Answered-Time"))
            if answered is not None and not leg.loopback:
                # the leg's own answer time: joined mid-call, no CHANNEL_ANSWER was seen
                leg.answered_at = leg.answered_at or answered
                self._person(call, answered)
                if leg.outbound and leg.profile in self.config.external_profiles:
                    call.ext_out_answered = True
            cause = ev.get("Hangup-Cause")
            cause = (cause or "").upper()
            if cause and cause != "LOSE_RACE" and cause not in call.b_causes \
                    and len(call.b_causes) < MAX_CAUSES_PER_CALL:
                call.b_causes += (cause,)
            return
        call.ended_at = end
        disp = ev.get("variable_originate_disposition") or ev.get("variable_DIALSTATUS")
        call.disposition = disp
        call.hangup_cause = ev.get("Hangup-Cause")
        call.sip_hangup = ev.get("variable_sip_hangup_disposition")
        app = ev.get("variable_current_application") or ev.get("variable_last_app")
        call.last_app = app
        # when the a-leg was bridged: bridge_uepoch (microseconds), else bridge_epoch (whole
        # seconds, up to a second early)
        bridged = _micros(ev.get("variable_bridge_uepoch"))
        epoch = ev.get("variable_bridge_epoch")
        if bridged is None and epoch and epoch.isdigit() and epoch != "0":
            bridged = float(int(epoch))
        # bridged to a loopback/ leg is no proof: its b side answers for anything inside it
        # (voicemail too); a person inside the loopback shows as that leg's own answer
        peer = ev.get("variable_bridge_channel") or ev.get("Other-Leg-Channel-Name") or ""
        if (disp == "SUCCESS" or bridged is not None) and not peer.startswith("loopback/"):
            self._person(call, bridged if bridged is not None else end)
        self._voicemail_facts(call, ev)
        if app == "callcenter" or ev.get("variable_cc_queue"):
            call.queue = True
            if (ev.get("variable_cc_cancel_reason") or "") in QUEUE_TIMEOUT_REASONS:
                call.queue_timeout = True
            if ev.get("variable_cc_cause") == "Terminated" and ev.get("variable_cc_agent"):
                self._person(call, end)

    def _voicemail_facts(self, call: _Call, ev: EventLike) -> None:
        """The voicemail app ran on this channel (the a-leg, or a loopback's b side)."""
        app = ev.get("variable_current_application") or ev.get("variable_last_app")
        if app == "voicemail" or ev.get("variable_voicemail_message_len"):
            call.voicemail = True
            self._vm_calls[call.root] = call
        vm_len = ev.get("variable_voicemail_message_len") or ""
        if vm_len.replace(":", "").strip("0"):
            call.vm_left = True

    def _call_of(self, uuid: str | None) -> _Call | None:
        if not uuid:
            return None
        leg = self._legs.get(uuid)
        return leg.call if leg is not None else None

    def _on_callcenter(self, ev: EventLike, t: float) -> None:
        member = ev.get("CC-Member-Session-UUID") or ev.get("Unique-ID")
        call = self._call_of(member)
        if call is None:
            if member and member not in self._done:
                leg = self._leg_for(member, None)
                call = leg.call if leg else None
            if call is None:
                self.stats.drop("callcenter-for-unknown-call")
                return
        action = ev.get("CC-Action") or ""
        if member == call.root:
            self._a_facts(call, ev, t)
        agent = ev.get("CC-Agent-UUID")
        if agent and agent in self._legs and self._legs[agent].call is not call:
            self._adopt(self._legs[agent].call, call.root)
        if action.startswith("member-queue") or action.startswith("bridge-agent"):
            call.queue = True
        if action == "bridge-agent-start":
            self._person(call, t)
        elif action == "member-queue-end":
            cause = ev.get("CC-Cause") or ""
            if cause == "Terminated" and (ev.get("CC-Agent") or ev.get("CC-Agent-Answered-Time")):
                self._person(call, t)
            elif (ev.get("CC-Cancel-Reason") or "") in QUEUE_TIMEOUT_REASONS:
                call.queue_timeout = True

    def _on_voicemail(self, ev: EventLike) -> None:
        if ev.get("VM-Action") != "leave-message":
            return
        call = self._call_of(ev.get("VM-UUID") or ev.get("Unique-ID"))
        if call is None:
            self.stats.drop("voicemail-for-unknown-call")
            return
        call.voicemail = True
        call.vm_left = True
        self._vm_calls[call.root] = call
        user, domain = ev.get("VM-User"), ev.get("VM-Domain")
        if user:
            call.vm_box = f"{user}@{domain}" if domain else user

    def _on_mwi(self, ev: EventLike) -> None:
        """A new message in a mailbox: credit the open call that reached that voicemail.

        MESSAGE_WAITING names no call, so it only folds into a call still open (ringing,
        in voicemail, or inside its settle window) that reached voicemail for that box.
        """
        if (ev.get("Update-Reason") or "").upper() != "NEW":
            return
        account = ev.get("MWI-Message-Account") or ""
        best: _Call | None = None
        for call in self._vm_calls.values():
            if not call.voicemail or call.vm_left:
                continue
            if call.vm_box and account and call.vm_box.split("@")[0] != account.split("@")[0]:
                continue
            if best is None or call.last_seen > best.last_seen:
                best = call
        if best is not None:
            best.vm_left = True

    # -- settling ------------------------------------------------------------------------
    def _maybe_settle(self, call: _Call) -> None:
        if call.gone_at is None and all(leg.gone for leg in call.legs.values()):
            call.gone_at = self._clock
            heapq.heappush(self._settling, (self._clock + self.config.settle_s, call.root))

    def _due(self) -> list[CallOutcome]:
        out: list[CallOutcome] = []
        settling = self._settling
        while len(settling) > MAX_SETTLING:
            _, root = heapq.heappop(settling)
            call = self._calls.get(root)
            if call is not None and call.gone_at is not None:
                self.stats.drop("settled-early")
                outcome = self._close(call)
                if outcome is not None:
                    out.append(outcome)
        heap = self._expiry
        while heap and heap[0][0] <= self._clock:
            _, root = heapq.heappop(heap)
            call = self._calls.get(root)
            if call is None or call.expires_at > self._clock or call.gone_at is not None:
                continue  # decided or merged already, a newer call of that id, or settling
            outcome = self._close(call, expired=True)
            if outcome is not None:
                out.append(outcome)
        while self._settling and self._settling[0][0] <= self._clock:
            _, root = heapq.heappop(self._settling)
            call = self._calls.get(root)
            if call is None or call.gone_at is None:
                continue
            if call.gone_at + self.config.settle_s > self._clock:
                heapq.heappush(self._settling, (call.gone_at + self.config.settle_s, root))
                continue
            outcome = self._close(call)
            if outcome is not None:
                out.append(outcome)
        return out

    def tick(self, now: float) -> list[CallOutcome]:
        self._clock = max(self._clock, now)
        return self._due()

    def next_due(self) -> float | None:
        """The earliest time (on the clock ``handle``/``tick`` are given) at which ``tick``
        may finalise a call: the first settling call's window end or the first open call's
        expiry; None when nothing waits. The live client sleeps until then instead of
        ticking on a fixed step. It may be early (``tick`` skips a call decided meanwhile),
        never late."""
        due = self._settling[0][0] if self._settling else None
        if len(self._settling) > MAX_SETTLING:
            due = self._clock  # tick decides the overflow at once
        return earliest_due(due, self._expiry, self._calls)

    def finish(self) -> list[CallOutcome]:
        """End of input: every open call is decided with what is known."""
        out: list[CallOutcome] = []
        for call in list(self._calls.values()):
            if call.root in self._calls:
                outcome = self._close(call)
                if outcome is not None:
                    out.append(outcome)
        self._settling.clear()
        self._expiry.clear()
        return out

    def _close(self, call: _Call, expired: bool = False) -> CallOutcome | None:
        self._calls.pop(call.root, None)
        self._vm_calls.pop(call.root, None)
        for uuid in call.legs:
            self._legs.pop(uuid, None)
            self._remember(uuid)
        if not call.a_seen:
            self.stats.drop("call-without-a-leg")
            return None
        self.stats.outcomes += 1
        if expired:
            # still open after max_call_age_s: given up, recorded, never texted
            self.stats.drop("expired-call")
            return dataclasses.replace(self.decide(call), verdict="ignored", reason=EXPIRED,
                                       voicemail_left=False, extra={"expired": True})
        return self.decide(call)

    # -- resync after a reconnect --------------------------------------------------------
    def known_legs(self) -> set[str]:
        """Legs still up as far as we know (snapshot to pass to ``resync``)."""
        return {uuid for uuid, leg in self._legs.items() if not leg.gone}

    def resync(self, channels: list[dict[str, Any]], calls: list[dict[str, Any]],
               now: float, known_before: set[str] | None = None) -> list[CallOutcome]:
        """Reconcile with ``show channels as json`` / ``show calls as json`` rows.

        Legs we track that FreeSWITCH no longer has ended while we were away: they are
        marked gone (their call settles and is decided once). Channels we never saw are
        adopted so their end is decided. ``show calls`` pairs (``b_uuid``) are bridges:
        a person answered. ``known_before``: the legs known when the query was sent; a leg
        whose CHANNEL_CREATE arrived after the snapshot is not in it and is not "gone".
        """
        self._clock = max(self._clock, now)
        present = {str(r.get("uuid")) for r in channels if r.get("uuid")}
        for leg in list(self._legs.values()):
            if known_before is not None and leg.uuid not in known_before:
                continue
            if not leg.gone and leg.uuid not in present:
                leg.gone = True
                leg.ended_at = leg.ended_at or now
                self.stats.drop("leg-ended-while-disconnected")
                self._maybe_settle(leg.call)
        by_uuid = {str(r["uuid"]): r for r in channels if r.get("uuid")}
        for uuid, row in by_uuid.items():
            if uuid in self._legs or uuid in self._done:
                continue
            parent = str(row.get("call_uuid") or "")
            parent_p = parent if parent and parent != uuid and parent in by_uuid and \
                row.get("direction") == "outbound" else None
            new_leg = self._leg_for(uuid, parent_p)
            if new_leg is not None:
                _RowEvent.apply(self, new_leg, row, now)
        for row in calls:
            a, b = str(row.get("uuid") or ""), str(row.get("b_uuid") or "")
            if a and b and a in self._legs:
                call = self._legs[a].call
                if b in self._legs and self._legs[b].call is not call:
                    self._adopt(self._legs[b].call, call.root)
                if not str(row.get("b_name") or "").startswith("loopback/"):
                    self._person(call, now)
        return self._due()

    # -- the verdict ---------------------------------------------------------------------
    def direction_of(self, call: _Call) -> Direction:
        cfg = self.config
        customer = (call.profile in cfg.external_profiles
                    or call.context in cfg.external_contexts) and not call.sip_authorized
        if call.call_direction != "outbound" and customer:
            return "inbound"
        if call.ext_out_dest is not None:
            return "outbound"
        if call.call_direction == "outbound" and call.profile in cfg.external_profiles:
            return "outbound"
        return "internal"

    def decide(self, call: _Call) -> CallOutcome:
        cfg = self.config
        direction = self.direction_of(call)
        started = call.created_at
        ended = call.ended_at or call.last_seen or started
        withheld = is_withheld_number(call.caller_num) or call.hide_number
        caller = None if withheld else normalise_caller(call.caller_num, cfg.default_region)
        name = None if withheld else _safe_text(call.caller_name)
        connected = call.person
        callee = None
        did = None
        voicemail_left = call.vm_left
        if direction == "inbound":
            did = normalise_caller(call.did, cfg.default_region) if call.did else None
            verdict, reason, decisive = self._inbound_reason(call)
            voicemail_left = call.vm_left and reason == "voicemail"
        else:
            verdict, reason = "ignored", direction
            decisive = call.person_at if call.person else ended
            if direction == "outbound":
                connected = call.ext_out_answered or (call.person and call.ext_out_dest is None)
                callee = normalise_caller(call.ext_out_dest or call.a_dest, cfg.default_region)
                voicemail_left = False
        ring = max(0.0, (decisive or ended or 0.0) - started) if started is not None else 0.0
        return CallOutcome(
            call=call.root,
            direction=direction,
            caller=caller,
            withheld=withheld,
            did=did,
            verdict=verdict,  # type: ignore[arg-type]
            reason=reason,
            voicemail_left=voicemail_left,
            ring_s=ring,
            pbx="freeswitch",
            started_at=started,
            ended_at=ended,
            caller_name=name,
            callee=callee,
            connected=connected,
        )

    @staticmethod
    def _inbound_reason(call: _Call) -> tuple[str, str, float | None]:
        """(verdict, reason, time of the decisive end) for a customer call."""
        end = call.ended_at or call.last_seen
        if call.person:
            return "answered", "answered", call.person_at
        if call.voicemail:
            return "missed", "voicemail", call.a_answered_at or call.ring_end or end
        if call.queue:
            return "missed", ("queue-timeout" if call.queue_timeout else "queue-abandon"), end
        disp = (call.disposition or "").upper()
        if not disp and call.b_causes:
            # the a-leg's own hangup was not seen (link down): the b-legs tell how it rang out
            for group in (BUSY, ABANDON, NOANSWER, UNAVAILABLE):
                hit = group.intersection(call.b_causes)
                if hit:
                    disp = min(hit)
                    break
        ring_end = call.ring_end if call.ring_end is not None and (
            end is None or call.ring_end <= end) else end
        if disp:
            if call.sip_hangup == "recv_cancel" and disp not in BUSY | UNAVAILABLE:
                return "missed", "abandon", ring_end
            if disp in BUSY:
                return "missed", "busy", ring_end
            if disp in UNAVAILABLE:
                return "missed", "unavailable", ring_end
            if disp in ABANDON:
                return "missed", "abandon", ring_end
            return "missed", "noanswer", ring_end
        if call.a_answered_at is not None:
            return "missed", "ivr-abandon", end
        cause = (call.hangup_cause or "").upper()
        if cause in BUSY:
            return "missed", "busy", end
        if cause in UNAVAILABLE:
            return "missed", "unavailable", end
        if cause in NOANSWER and call.sip_hangup != "recv_cancel":
            return "missed", "noanswer", end
        return "missed", "abandon", end


class _RowEvent:
    """Adapter: a ``show channels`` JSON row seen as the a-leg facts an event would give."""

    KEYS: ClassVar[dict[str, str]] = {
        "Call-Direction": "direction",
        "Caller-Caller-ID-Number": "cid_num",
        "Caller-Caller-ID-Name": "cid_name",
        "Caller-Destination-Number": "dest",
        "Caller-Context": "context",
        "Channel-Name": "name",
    }

    def __init__(self, row: dict[str, Any]) -> None:
        self.name = "RESYNC"
        self.row = row

    def get(self, key: str, default: str | None = None) -> str | None:
        col = self.KEYS.get(key)
        if col is None:
            if key == "Caller-Channel-Created-Time":
                epoch = str(self.row.get("created_epoch") or "")
                return str(int(epoch) * 1_000_000) if epoch.isdigit() else default
            return default
        value = self.row.get(col)
        return str(value) if value is not None else default

    @classmethod
    def apply(cls, tracker: FsCallTracker, leg: _Leg, row: dict[str, Any], now: float) -> None:
        ev = cls(row)
        call = leg.call
        leg.profile = _profile_of(ev)
        leg.outbound = row.get("direction") == "outbound"
        leg.dest = ev.get("Caller-Destination-Number")
        if leg.uuid == call.root:
            tracker._a_facts(call, ev, now)
            if row.get("initial_dest"):
                call.did = str(row["initial_dest"])
            if str(row.get("callstate") or "") == "ACTIVE":
                call.a_answered_at = call.a_answered_at or now
        elif leg.outbound and leg.profile in tracker.config.external_profiles:
            call.ext_out_dest = call.ext_out_dest or leg.dest
