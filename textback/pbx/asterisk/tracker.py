"""The Asterisk call tracker: a pure state machine from AMI events to per-call outcomes.

No socket, no clock of its own: ``handle(msg, now)`` takes the time from the caller (live)
or, in replay, from the times the events carry (``Timestamp``, CEL ``EventTime``, Cdr
``EndTime``, the epoch in a new channel's ``Uniqueid``), never going backwards.

The rules, each taken from a real capture (../shared/traces/asterisk-22/MANIFEST.md):

* a call is one ``Linkedid``; a channel whose Linkedid changes (directed pickup) moves to
  the other call, and a call left with no channel of its own is forgotten, not reported;
* inbound = the call's first channel came in from the trunk side (trunk context or
  endpoint, state Ring, and not itself a Dial destination); outbound = a trunk channel is
  a Dial destination; anything else is internal;
* a person answered <=> the trunk channel shared a bridge (directly, or through a Local
  channel pair) with a person's channel. ``Newstate Up`` is not a person: IVR, queue and
  voicemail answer the channel too. Answered is sticky (a blind transfer that rings out
  afterwards does not undo it);
* a missed call's reason comes from the last routing stage the caller reached
  (Dial → DIALSTATUS, Queue → QUEUESTATUS / caller hang-up, VoiceMail, IVR), never from
  Cdr dispositions;
* ``VarSet``/``Newexten`` (class ``dialplan``) are the best source of that stage, but the
  least-privilege manager user (dialplan/asterisk/manager_textback.conf) does not get them.
  Then the class ``call`` events stand in: DialEnd statuses for a Dial, CEL ``ANSWER`` /
  ``APP_START`` by ``VoiceMail`` or a ``MessageWaiting`` on the caller's own channel for
  voicemail, and the caller's Hangup cause (no route / unallocated / subscriber absent)
  for a call that never reached a phone (a Dial to an unreachable phone has no DialBegin);
* ring time (``ring_s``) is from class ``call`` events alone, the same for the
  least-privilege user: the arrival to the decisive end (a person answering, the caller
  hanging up, the LAST ringing leg giving up, voicemail answering). Every DialBegin
  destination rings until its DialEnd or Hangup, so a busy member of a ring group, a
  302's CANCEL or a hunt group's first step ends a leg, not the ring. Times are the
  event's ``Timestamp`` (``timestampevents = yes``) when it has one, else the clock;
* a call is final ``settle_s`` after its last channel is gone, so late events (Cdr, CEL,
  MessageWaiting) still fold in; then every trace of it is dropped (bounded memory) except
  its Linkedid in a bounded "recently decided" set, so a late event can never make a
  second record for it;
* a call that survives our own restart: the moment a call is classified inbound from its
  Newchannel (trunk context, caller, DID, trunk Uniqueid), ``on_call_started`` receives a
  ``CallStart``, and again whenever the evidence of what became of it changes (``tick``);
  the daemon keeps them in its store and ``seed`` puts them back before the reconnect, so
  the CoreShowChannels resync attaches the live channels to a call whose direction, caller
  and DID are known. A seeded call the PBX no longer lists ended while we were down: it is
  finalised once, as ``missed`` only if what we saw before (a Dial leg ended unanswered,
  the queue let go, voicemail, the caller hung up) already made it missed, else
  ``ignored``/``unknown-after-restart`` (nobody can tell whether someone answered).
  A call first seen mid-call (its Newchannel went to the socket of a process that was
  killed, or its start was not yet kept) has no DID anywhere in what the PBX shows now
  (CoreShowChannel gives the channel's current context/extension): its DID is None and
  ``extra["did_unseen"]`` says so, never the current extension passed off as a DID;
* bounded work and memory: a call still open ``max_call_age_s`` after it started is given
  up (``ignored``/``expired``); ``tick`` pops only the calls that are due (settle deque,
  expiry heap with lazy deletion) and reports the progress of only the calls an event
  touched since the last tick, so neither a tick nor an event costs anything per open
  call; what one call keeps (channels, statuses, mailboxes) is capped.
"""

from __future__ import annotations

import calendar
import dataclasses
import heapq
import itertools
import math
from collections import OrderedDict, deque
from collections.abc import Callable

from textback.numbers import clean_caller_id, is_withheld_number, normalise_caller, to_e164
from textback.pbx.asterisk.parser import AmiMessage
from textback.pbx.call_start import CallProgress, CallStart
from textback.pbx.outcome import UNKNOWN_AFTER_RESTART, CallOutcome, Direction
from textback.pbx.stream import EXPIRED, StreamStats, TrackerConfig, earliest_due

# Channel technologies that are plumbing, never a person.
HELPER_TECHS = frozenset(
    {"Local", "Announcer", "Recorder", "CBAnn", "CBRec", "Snoop", "Message", "Multicast",
     "AsyncGoto", "Bridge", "Surrogate"}
)
IVR_APPS = frozenset({"Background", "BackGround", "Playback", "WaitExten", "Read", "IVR"})
# QUEUESTATUS values meaning the queue gave up on the caller (the caller did not hang up).
QUEUE_GAVE_UP = frozenset({"TIMEOUT", "FULL", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL",
                           "LEAVEUNAVAIL", "CONTINUE"})
# Q.850 causes on the caller's Hangup meaning "the PBX found nobody to ring": unallocated
# number (1), no route to network / destination (2, 3: unavailable.ami, Dial to a phone with
# no contact), subscriber absent (20), call rejected (21), destination out of order (27),
# no circuit (34), network out of order (38). Used only when no Dial leg, queue, answer or
# bridge was seen, i.e. when DIALSTATUS=CHANUNAVAIL (class dialplan) is not available.
UNREACHABLE_CAUSES = frozenset({"1", "2", "3", "20", "21", "27", "34", "38"})
# Events we know and deliberately ignore (not counted as dropped).
NOISE_EVENTS = frozenset(
    {"FullyBooted", "SuccessfulAuth", "DeviceStateChange", "QueueMemberStatus", "RTCPSent",
     "RTCPReceived", "NewConnectedLine", "SoftHangupRequest", "DialState", "AgentCalled",
     "AgentRingNoAnswer", "AgentComplete", "AgentConnect", "AgentDump", "MusicOnHoldStart",
     "MusicOnHoldStop", "BridgeCreate", "AGIExecStart", "AGIExecEnd", "AsyncAGIStart",
     "AsyncAGIExec", "AsyncAGIEnd", "NewAccountCode", "Registry", "PeerStatus",
     "ContactStatus", "Reload", "LocalBridge", "LocalOptimizationBegin",
     "LocalOptimizationEnd", "Pickup", "BlindTransfer", "AttendedTransfer", "Hold", "Unhold",
     "ChallengeSent", "ChallengeResponseFailed", "InvalidAccountID", "InvalidPassword",
     "ExtensionStatus", "PresenceStatus", "DTMFBegin", "DTMFEnd",
     "ChanSpyStart", "ChanSpyStop", "UserEvent", "VoicemailPasswordChange", "QueueParams",
     "QueueMember", "QueueStatusComplete", "QueueMemberAdded", "QueueMemberRemoved",
     "QueueMemberPause", "QueueMemberPenalty", "QueueMemberRinginuse", "Shutdown",
     "LoadAverageLimit", "ModuleLoadReport", "DNDState", "MeetmeJoin", "MeetmeLeave",
     "ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeStart", "ConfbridgeEnd",
     "ConfbridgeTalking", "MixMonitorStart", "MixMonitorStop", "CoreShowChannelsComplete",
     "CoreShowChannel", "Status", "StatusComplete", "DAHDIChannel", "HangupHandlerPush",
     "HangupHandlerRun", "HangupHandlerPop", "Masquerade", "FAXStatus"}
)
DECIDED_MEMORY = 8192
MAX_LEARNED_TRUNKS = 64
# What one call may keep: channels (gone ones are evicted first), DialEnd statuses and
# mailboxes, bridges per channel. Far above any real call (a ring group of 100 phones
# through Local channels is ~200 channels), low enough that one call is a few hundred KB.
MAX_CHANS_PER_CALL = 256
MAX_FACTS_PER_CALL = 16
MAX_BRIDGES_PER_CHAN = 16
# Calls ended and waiting out settle_s: live, the calls ending within settle_s; with a clock
# that does not move (a replay whose events repeat the same times) they would pile up until
# the end: past this many, the oldest are decided at once.
MAX_SETTLING = 4096


def _uid_epoch(uid: str) -> float | None:
    """The creation second in an Asterisk Uniqueid ("[system-]1795395183.12")."""
    head = uid.rpartition("-")[2].partition(".")[0]
    return float(head) if head.isdigit() else None


def endpoint_of(channel: str) -> tuple[str, str]:
    """("PJSIP", "trunk") for "PJSIP/trunk-0000001c"; ("Local", "101@ctx") for Local."""
    tech, _, rest = channel.partition("/")
    if tech == "Local":
        return tech, rest.partition(";")[0].rpartition("-")[0] or rest.partition(";")[0]
    head, dash, _ = rest.rpartition("-")
    return tech, head if dash else rest


def _callee_of(dial_string: str | None) -> str | None:
    """The number in a Dial string: "+15557770016@trunk", "trunk/sip:+1555@host"."""
    if not dial_string:
        return None
    s = dial_string.rpartition("/")[2]
    s = s.partition("@")[0]
    if s.startswith(("sip:", "sips:", "tel:")):
        s = s.partition(":")[2]
    return clean_caller_id(s)


class _Chan:
    __slots__ = ("bridges", "call", "dialed", "gone", "helper", "name", "ring", "trunk", "uid")

    def __init__(self, uid: str, name: str, trunk: bool, ring: bool, call: _Call) -> None:
        self.uid = uid
        self.name = name
        self.trunk = trunk
        self.ring = ring
        self.helper = name.partition("/")[0] in HELPER_TECHS
        self.call = call
        self.dialed = False
        self.gone = False
        # tuples, not sets: a few members at most (capped), and the empty tuple costs
        # nothing per channel where an empty set costs 216 bytes
        self.bridges: tuple[str, ...] = ()


class _Call:
    __slots__ = (
        "answered_at",
        "callee",
        "caller_hangup",
        "caller_name",
        "caller_raw",
        "chans",
        "connected",
        "dialend",
        "dialstatus",
        "did_raw",
        "did_unseen",
        "expires_at",
        "first",
        "gone_at",
        "hangup_cause",
        "in_queue",
        "linkedid",
        "live",
        "pbx_up",
        "person",
        "queue_abandon",
        "queue_hangup",
        "queue_status",
        "reattached",
        "resynced",
        "ring_end",
        "ring_final",
        "ring_start",
        "ringing",
        "seeded",
        "seq",
        "stage",
        "started_at",
        "trunk_dialed",
        "vm_boxes",
        "vm_left",
        "vm_status",
        "withheld_pres",
    )

    def __init__(self, linkedid: str, started_at: float | None, expires_at: float) -> None:
        self.linkedid = linkedid
        self.started_at = started_at
        self.expires_at = expires_at
        self.seq = 0  # order of arrival among open calls
        self.chans: dict[str, _Chan] = {}
        self.first: _Chan | None = None
        self.live = 0
        self.gone_at: float | None = None
        self.caller_raw: str | None = None
        self.caller_name: str | None = None
        self.did_raw: str | None = None
        self.did_unseen = False  # first channel picked up mid-call: its DID never seen
        self.withheld_pres = False
        self.person = False
        self.connected = False
        self.answered_at: float | None = None
        # ring time (see _ring_*): when it began, when it ended (None while it goes on),
        # whether that end is decisive, and the Dial legs ringing now (DestUniqueids)
        self.ring_start: float | None = started_at
        self.ring_end: float | None = None
        self.ring_final = False
        self.ringing: tuple[str, ...] = ()
        self.stage = ""
        self.dialstatus = ""
        self.dialend: tuple[str, ...] = ()  # distinct DialEnd statuses, in arrival order
        self.in_queue = False
        self.queue_status = ""
        self.queue_abandon = False
        self.queue_hangup = False
        self.vm_boxes: tuple[str, ...] = ()  # distinct mailboxes
        self.vm_status = ""
        self.vm_left = False
        self.hangup_cause = ""
        self.pbx_up = False
        self.caller_hangup = False
        self.trunk_dialed = False
        self.callee: str | None = None
        self.resynced = False
        self.seeded = False  # put back by ``seed`` from the facts kept across a restart
        self.reattached = False  # a seeded call the PBX showed alive after the restart


class CallTracker:
    """AMI events in (``handle``), final ``CallOutcome`` records out (via ``tick``/``finish``)."""

    def __init__(self, config: TrackerConfig | None = None,
                 stats: StreamStats | None = None) -> None:
        self.config = config or TrackerConfig()
        self.stats = stats or StreamStats()
        self.now = 0.0
        self._clocked = False
        self._calls: dict[str, _Call] = {}
        self._chans: dict[str, _Chan] = {}
        self._locals: dict[str, _Chan] = {}
        self._bridges: dict[str, set[str]] = {}
        self._decided: OrderedDict[str, None] = OrderedDict()
        self._settle: deque[tuple[float, str]] = deque()
        # (expires_at, linkedid) of open calls; entries of calls already gone are skipped
        # when popped (lazy deletion) and swept when they outnumber the open calls
        self._expiry: list[tuple[float, str]] = []
        # calls that reached voicemail (a MessageWaiting without a channel is matched
        # against these only, not against every open call)
        self._vm_calls: dict[str, _Call] = {}
        self._seq = itertools.count()
        self._trunk_contexts = frozenset(self.config.trunk_contexts)
        self._trunk_endpoints = {e.rpartition("/")[2] for e in self.config.trunk_endpoints}
        self._learned_trunks: set[str] = set()
        # last MessageWaiting New count per mailbox (bounded by the PBX's mailbox count)
        self._mwi_new: dict[str, int] = {}
        self._time_cache: tuple[str, float] = ("", 0.0)
        # the Timestamp of the event being handled (``timestampevents = yes``), else None
        self._msg_ts: float | None = None
        self._resync_seen: set[str] | None = None
        self._resync_known: set[str] = set()
        self.adopting = False
        self._ready: list[CallOutcome] = []
        # Inbound calls reported through on_call_started: their last reported progress.
        self.on_call_started: Callable[[CallStart], None] | None = None
        self._watched: dict[str, CallProgress] = {}
        # watched calls an event touched since the last tick (their progress may differ)
        self._dirty: dict[str, None] = {}
        self._handlers: dict[str, Callable[[AmiMessage], None]] = {
            "Newchannel": self._on_newchannel,
            "VarSet": self._on_varset,
            "Newexten": self._on_newexten,
            "Newstate": self._on_newstate,
            "Hangup": self._on_hangup,
            "HangupRequest": self._on_hangup_request,
            "DialBegin": self._on_dialbegin,
            "DialEnd": self._on_dialend,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BridgeDestroy": self._on_bridge_destroy,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerLeave": self._on_queue_leave,
            "QueueCallerAbandon": self._on_queue_abandon,
            "MessageWaiting": self._on_message_waiting,
            "NewCallerid": self._on_newcallerid,
            "Rename": self._on_rename,
            "CEL": self._on_cel,
            "Cdr": self._on_cdr,
        }

    # ------------------------------------------------------------------ public
    @property
    def open_calls(self) -> int:
        return len(self._calls)

    def handle(self, msg: AmiMessage, now: float | None = None) -> None:
        """Fold one event into the state (responses and the banner are not events)."""
        if now is not None:
            self._clocked = True
            if now > self.now:
                self.now = now
        else:
            self._clocked = False
        handler = self._handlers.get(msg.name)
        if handler is not None:
            ts = msg.get("Timestamp")
            self._msg_ts = _epoch(ts) if ts else None
            handler(msg)
            if self._watched:
                self._touch(msg)
        elif msg.name not in NOISE_EVENTS:
            self.stats.drop("unknown-event")

    def tick(self, now: float | None = None) -> list[CallOutcome]:
        """Finalise the calls whose settle window has passed or that are older than
        ``max_call_age_s``; return them (and any ready). Touches only those calls and the
        watched calls an event touched since the last tick."""
        if now is not None and now > self.now:
            self.now = now
        if self._dirty:
            self._report_progress()
        q = self._settle
        limit = self.now
        while len(q) > MAX_SETTLING:
            _, lid = q.popleft()
            call = self._calls.get(lid)
            if call is not None and call.gone_at is not None and call.live == 0:
                self.stats.drop("settled-early")
                self._finalise(call)
        while q and q[0][0] <= limit:
            _, lid = q.popleft()
            call = self._calls.get(lid)
            if call is not None and call.gone_at is not None and call.live == 0 \
                    and call.gone_at + self.config.settle_s <= limit:
                self._finalise(call)
        heap = self._expiry
        while heap and heap[0][0] <= limit:
            _, lid = heapq.heappop(heap)
            call = self._calls.get(lid)
            if call is None or call.expires_at > limit or call.gone_at is not None:
                continue  # decided already, a newer call of that id, or settling now
            self._finalise(call, expired=True)
        out, self._ready = self._ready, []
        return out

    def next_due(self) -> float | None:
        """The earliest time (on the clock ``handle``/``tick`` are given) at which ``tick``
        may finalise a call: the first settling call's window end or the first open call's
        expiry; None when nothing waits. The live client sleeps until then instead of
        ticking on a fixed step. It may be early (a call that came back to life, a call
        decided meanwhile: ``tick`` skips those), never late."""
        due = self._settle[0][0] if self._settle else None
        if len(self._settle) > MAX_SETTLING:
            due = self.now  # tick decides the overflow at once
        return earliest_due(due, self._expiry, self._calls)

    def finish(self) -> list[CallOutcome]:
        """End of input: finalise every open call, in order of arrival."""
        for call in list(self._calls.values()):
            if call.gone_at is None:
                call.gone_at = self.now
            self._finalise(call)
        self._settle.clear()
        self._expiry.clear()
        self._dirty.clear()
        out, self._ready = self._ready, []
        return out

    def was_decided(self, linkedid: str) -> bool:
        return linkedid in self._decided

    # ----------------------------------------------------- across a restart
    def seed(self, starts: list[CallStart]) -> int:
        """Put back the inbound calls in progress when the process stopped (before the
        connection's ``resync_begin``). Each gets its trunk channel, so CoreShowChannels
        attaches the channels still alive to it; one it no longer lists is found vanished
        at ``resync_end`` and finalised once. Returns how many were seeded (a call already
        known or decided, or another PBX's, is skipped)."""
        n = 0
        for s in starts:
            lid, uid = s.call, s.trunk_uid
            if s.pbx != "asterisk" or not lid or not uid or lid in self._calls \
                    or lid in self._decided or uid in self._chans:
                continue
            call = self._new_call(lid, s.started_at)
            p = s.progress
            call.stage, call.dialstatus, call.dialend = p.stage, p.dialstatus, tuple(p.dialend)
            call.in_queue, call.queue_status = p.in_queue, p.queue_status
            call.queue_abandon, call.queue_hangup = p.queue_abandon, p.queue_hangup
            call.caller_hangup, call.pbx_up = p.caller_hangup, p.pbx_up
            call.person, call.connected = p.person, p.connected
            call.answered_at, call.ring_end = p.answered_at, p.ring_end
            call.ring_final = p.person or p.caller_hangup
            call.vm_left, call.vm_boxes = p.vm_left, tuple(p.vm_boxes[:MAX_FACTS_PER_CALL])
            if call.vm_boxes:
                self._vm_calls[lid] = call
            call.withheld_pres = p.withheld_pres
            call.caller_raw, call.caller_name = s.caller_raw, s.caller_name
            call.did_raw = s.did_raw
            call.seeded = True
            chan = _Chan(uid, s.trunk_channel, True, True, call)
            self._chans[uid] = chan
            call.chans[uid] = chan
            call.first = chan
            call.live = 1
            endpoint = endpoint_of(s.trunk_channel)[1]
            if endpoint and len(self._learned_trunks) < MAX_LEARNED_TRUNKS:
                self._learned_trunks.add(endpoint)
            if self.on_call_started is not None:
                self._watched[lid] = p
            n += 1
        return n

    def _report_start(self, call: _Call) -> None:
        """A call just classified inbound from its Newchannel: report its facts."""
        report = self.on_call_started
        first = call.first
        if report is None or first is None or call.linkedid in self._watched:
            return
        progress = _progress(call)
        self._watched[call.linkedid] = progress
        report(self._start_of(call, first, progress))

    def _touch(self, msg: AmiMessage) -> None:
        """Note the watched calls ``msg`` may have changed: those of the channels it names
        (after the handler ran, so a channel that moved counts for its new call) and of its
        Linkedid. Only these are compared at the next tick."""
        watched, dirty, chans = self._watched, self._dirty, self._chans
        for key in ("Uniqueid", "DestUniqueid", "UniqueID"):
            uid = msg.get(key)
            if uid:
                chan = chans.get(uid)
                if chan is not None and chan.call.linkedid in watched:
                    dirty[chan.call.linkedid] = None
        lid = msg.get("Linkedid")
        if lid and lid in watched:
            dirty[lid] = None

    def _report_progress(self) -> None:
        """Report every touched watched call whose evidence changed since it was last
        reported."""
        report = self.on_call_started
        dirty, self._dirty = self._dirty, {}
        for lid in dirty:
            last = self._watched.get(lid)
            call = self._calls.get(lid)
            first = call.first if call is not None else None
            if last is None or call is None or first is None:
                continue
            progress = _progress(call)
            if progress != last:
                self._watched[lid] = progress
                if report is not None:
                    report(self._start_of(call, first, progress))

    @staticmethod
    def _start_of(call: _Call, first: _Chan, progress: CallProgress) -> CallStart:
        return CallStart(call=call.linkedid, pbx="asterisk",
                         started_at=call.started_at if call.started_at is not None else 0.0,
                         trunk_uid=first.uid, trunk_channel=first.name,
                         caller_raw=call.caller_raw, caller_name=call.caller_name,
                         did_raw=call.did_raw, progress=progress)

    # -------------------------------------------------------------- resync API
    def resync_begin(self) -> None:
        """A (re)connect: CoreShowChannel events follow, then ``resync_end``.

        Until then, events for channels we never saw adopt them (their Newchannel may have
        been sent while we were away). Only channels known now can be found vanished at
        ``resync_end``: one created while the listing is under way is not in it.
        """
        self._resync_seen = set()
        self._resync_known = {uid for uid, c in self._chans.items() if not c.gone}
        self.adopting = True

    def resync_channel(self, msg: AmiMessage) -> None:
        """One ``CoreShowChannel`` event: a channel alive on the PBX right now."""
        self._msg_ts = None
        uid = msg.get("Uniqueid") or ""
        lid = msg.get("Linkedid") or uid
        if not uid:
            self.stats.drop("resync-bad-channel")
            return
        if self._resync_seen is not None:
            self._resync_seen.add(uid)
        chan = self._chans.get(uid)
        if chan is None:
            if lid in self._decided:
                return
            call = self._calls.get(lid)
            if call is None:
                dur = msg.get("Duration") or ""
                started = self.now - _duration_s(dur) if dur else self.now
                call = self._new_call(lid, started)
            elif call.seeded:
                call.reattached = True
            name = msg.get("Channel") or ""
            context = msg.get("Context") or ""
            trunk = self._is_trunk(name, context)
            state = msg.get("ChannelStateDesc") or ""
            added = self._add_chan(call, uid, name, trunk, state in ("Ring", "Up"), msg)
            if added is None:
                return
            chan = added
            call.resynced = True
            app = msg.get("Application") or ""
            if chan is call.first:
                if state == "Up":
                    call.pbx_up = True
                self._stage_from_app(call, app, msg.get("ApplicationData") or "")
        elif chan.call.seeded and not chan.call.reattached:
            # our own channel from before the restart: what it does now was not seen
            call = chan.call
            call.reattached = call.resynced = True
            if chan is call.first:
                if (msg.get("ChannelStateDesc") or "") == "Up":
                    call.pbx_up = True
                self._stage_from_app(call, msg.get("Application") or "",
                                     msg.get("ApplicationData") or "")
        elif chan.call.linkedid != lid:
            self._move(chan, lid)
        bridge = msg.get("BridgeId") or ""
        if bridge and bridge not in chan.bridges:
            self._enter_bridge(chan, bridge)
        if chan.call.linkedid in self._watched:
            self._dirty[chan.call.linkedid] = None

    def resync_end(self) -> list[CallOutcome]:
        """Channels we knew that the PBX no longer lists ended while we were away."""
        seen, self._resync_seen = self._resync_seen, None
        known, self._resync_known = self._resync_known, set()
        self.adopting = False
        if seen is not None:
            for chan in list(self._chans.values()):
                if not chan.gone and chan.uid in known and chan.uid not in seen:
                    chan.call.resynced = True
                    self.stats.drop("resync-vanished-channel")
                    self._gone(chan)
        return self.tick()

    # ----------------------------------------------------------------- helpers
    def _sample_time(self, t: float | None) -> None:
        """Replay only: with an injected clock, times inside events are not the clock."""
        if t is not None and t > self.now and not self._clocked:
            self.now = t

    def _parse_time(self, s: str | None) -> float | None:
        """'2026-11-23 00:53:03[.123456]' (taken as UTC) → epoch seconds; cached."""
        if not s:
            return None
        cached, value = self._time_cache
        if s == cached:
            return value
        try:
            date, _, clock = s.partition(" ")
            y, mo, d = date.split("-")
            hh, mm, ss = clock.split(":")
            t = calendar.timegm((int(y), int(mo), int(d), int(hh), int(mm), 0, 0, 0, 0))
            value = t + float(ss)
        except ValueError:
            return None
        self._time_cache = (s, value)
        return value

    def _is_trunk(self, name: str, context: str) -> bool:
        if context in self._trunk_contexts:
            return True
        ep = endpoint_of(name)[1]
        return ep in self._trunk_endpoints or ep in self._learned_trunks

    def _new_call(self, lid: str, started: float | None) -> _Call:
        expires = (started if started is not None else self.now) + self.config.max_call_age_s
        call = _Call(lid, started, expires)
        call.seq = next(self._seq)
        self._calls[lid] = call
        heap = self._expiry
        if len(heap) > 2 * len(self._calls) + 1024:
            # mostly entries of calls decided since: sweep them (amortised O(1) per call)
            heap[:] = [(c.expires_at, k) for k, c in self._calls.items()]
            heapq.heapify(heap)
        else:
            heapq.heappush(heap, (expires, lid))
        return call

    def _evict_gone(self, call: _Call) -> bool:
        """Forget the call's gone channels (never its first); True if it is under the cap."""
        for uid, chan in list(call.chans.items()):
            if chan.gone and chan is not call.first:
                del call.chans[uid]
                if self._chans.get(uid) is chan:
                    del self._chans[uid]
                if self._locals.get(chan.name) is chan:
                    del self._locals[chan.name]
        return len(call.chans) < MAX_CHANS_PER_CALL

    def _add_chan(self, call: _Call, uid: str, name: str, trunk: bool, ring: bool,
                  msg: AmiMessage) -> _Chan | None:
        if len(call.chans) >= MAX_CHANS_PER_CALL and not self._evict_gone(call):
            self.stats.drop("channel-cap")
            return None
        chan = _Chan(uid, name, trunk, ring, call)
        self._chans[uid] = chan
        call.chans[uid] = chan
        call.live += 1
        call.gone_at = None
        if chan.helper and name.startswith("Local/"):
            self._locals[name] = chan
        if call.first is None or uid == call.linkedid:
            call.first = chan
            num = msg.get("CallerIDNum")
            call.caller_raw = num
            call.caller_name = msg.get("CallerIDName")
            call.did_raw = msg.get("Exten")
            call.did_unseen = False
            if msg.name != "Newchannel" and (msg.get("Context") or "") \
                    not in self._trunk_contexts:
                # picked up mid-call (resync, adopted after a restart): Exten is where the
                # channel is now (route-direct/s, an extension), not the DID it came in on
                call.did_raw, call.did_unseen = None, True
        if trunk and len(self._learned_trunks) < MAX_LEARNED_TRUNKS:
            self._learned_trunks.add(endpoint_of(name)[1])
        return chan

    def _chan(self, msg: AmiMessage, key: str = "Uniqueid") -> _Chan | None:
        uid = msg.get(key)
        chan = self._chans.get(uid) if uid else None
        if chan is None:
            lid = msg.get("Linkedid")
            if lid in self._decided:
                self.stats.drop("late-event")
                return None
            if self.adopting and uid and lid:
                return self._adopt(msg, uid, lid)
            self.stats.drop("unknown-channel")
            return None
        if chan.call.seeded and not chan.call.reattached:
            chan.call.reattached = chan.call.resynced = True
        lid = msg.get("Linkedid")
        if lid and lid != chan.call.linkedid and lid in self._calls:
            self._move(chan, lid)
        return chan

    def _adopt(self, msg: AmiMessage, uid: str, lid: str) -> _Chan | None:
        """Right after a (re)connect: every channel event carries the channel's snapshot,
        so a channel whose Newchannel we missed is picked up from it."""
        call = self._calls.get(lid)
        if call is None:
            call = self._new_call(lid, _uid_epoch(lid) if not self._clocked else self.now)
        elif call.seeded:
            call.reattached = True
        name = msg.get("Channel") or ""
        trunk = self._is_trunk(name, msg.get("Context") or "")
        chan = self._add_chan(call, uid, name, trunk, msg.get("ChannelState") != "0", msg)
        if chan is None:
            return None
        call.resynced = True
        self.stats.drop("adopted-channel")
        return chan

    def _move(self, chan: _Chan, lid: str) -> None:
        """A channel changed Linkedid (directed pickup): it now belongs to that call."""
        target = self._calls.get(lid)
        if target is None:
            return
        old = chan.call
        del old.chans[chan.uid]
        if not chan.gone:
            old.live -= 1
            target.live += 1
            target.gone_at = None
        chan.call = target
        target.chans[chan.uid] = chan
        if old.first is chan:
            old.first = None
        if not old.chans:
            # a temporary call (the pickup channel's own Linkedid): never a call of its own
            del self._calls[old.linkedid]
            self._watched.pop(old.linkedid, None)
            self._vm_calls.pop(old.linkedid, None)
            self._remember(old.linkedid)
        elif old.live == 0 and old.gone_at is None:
            self._mark_gone(old)
        for bridge in chan.bridges:
            self._check_person(target, bridge)

    def _remember(self, lid: str) -> None:
        self._decided[lid] = None
        if len(self._decided) > DECIDED_MEMORY:
            self._decided.popitem(last=False)

    def _mark_gone(self, call: _Call) -> None:
        call.gone_at = self.now
        self._settle.append((self.now + self.config.settle_s, call.linkedid))

    def _gone(self, chan: _Chan) -> None:
        chan.gone = True
        for bridge in chan.bridges:
            members = self._bridges.get(bridge)
            if members is not None:
                members.discard(chan.uid)
                if not members:
                    del self._bridges[bridge]
        chan.bridges = ()
        call = chan.call
        call.live -= 1
        if call.live <= 0:
            call.live = 0
            self._mark_gone(call)

    # ------------------------------------------------------------- ring time
    # ring_s = the call's arrival → its decisive end: a person answering, the caller
    # hanging up, the last ringing leg giving up, or voicemail answering. From class call
    # events alone: every DialBegin destination is a ringing leg until its DialEnd (any
    # status) or its Hangup; when the last one stops and no new one starts, the ring ended
    # then. A busy phone's 486, a 302's CANCEL or a hunt group's first step ends one leg,
    # not the ring, while another leg still rings or a new one begins.
    def _at(self) -> float:
        """The time of the event being handled: its Timestamp (``timestampevents =
        yes``), else when it was received (the clock given to ``handle``)."""
        return self._msg_ts if self._msg_ts is not None else self.now

    def _leg_rings(self, call: _Call, uid: str) -> None:
        if uid not in call.ringing and len(call.ringing) < MAX_CHANS_PER_CALL:
            call.ringing += (uid,)
        if not call.ring_final:
            call.ring_end = None  # ringing (again): a leg that gave up before was not the end

    def _leg_ended(self, call: _Call, uid: str) -> None:
        call.ringing = tuple(u for u in call.ringing if u != uid)
        if not call.ringing and not call.in_queue:
            self._ring_paused(call)

    def _ring_paused(self, call: _Call) -> None:
        """Nothing rings now: the ring ended here unless another leg starts ringing."""
        if not call.ring_final:
            call.ring_end = self._at()

    def _ring_decided(self, call: _Call) -> None:
        """The caller hung up, or voicemail answered: the end, unless the ring had already
        ended (the last leg gave up before)."""
        if call.ring_final:
            return
        call.ring_final = True
        if call.ring_end is None:
            call.ring_end = self._at()

    def _ring_answered(self, call: _Call) -> None:
        """A person answered: the end, unless the caller had hung up first."""
        if call.ring_final and call.ring_end is not None:
            return
        call.ring_final = True
        call.ring_end = self._at()

    def _stage_from_app(self, call: _Call, app: str, data: str) -> None:
        if app == "Dial":
            if not call.in_queue:
                call.stage = "dial"
        elif app == "Queue":
            call.stage = "queue"
        elif app == "VoiceMail":
            call.stage = "vm"
            self._ring_decided(call)  # voicemail answering ends the ring
            boxes = data.partition(",")[0]
            for b in boxes.split("&"):
                box = b if "@" in b else b + "@default"
                if b and box not in call.vm_boxes and len(call.vm_boxes) < MAX_FACTS_PER_CALL:
                    call.vm_boxes += (box,)
            if call.vm_boxes:
                self._vm_calls[call.linkedid] = call
        elif app in IVR_APPS and call.stage == "":
            call.stage = "ivr"

    # ---------------------------------------------------------------- handlers
    def _on_newchannel(self, msg: AmiMessage) -> None:
        uid = msg.get("Uniqueid") or ""
        lid = msg.get("Linkedid") or uid
        if not uid:
            self.stats.drop("bad-event")
            return
        if uid in self._chans:
            self.stats.drop("duplicate-newchannel")
            return
        self._sample_time(_uid_epoch(uid))
        ts = msg.get("Timestamp")
        if ts:
            self._sample_time(_float(ts))
        if lid in self._decided:
            self.stats.drop("late-event")
            return
        call = self._calls.get(lid)
        if call is None:
            call = self._new_call(lid, self.now)
            call.ring_start = self._at()
        name = msg.get("Channel") or ""
        context = msg.get("Context") or ""
        trunk = self._is_trunk(name, context)
        state = msg.get("ChannelState")
        chan = self._add_chan(call, uid, name, trunk, state != "0", msg)
        if chan is None:
            return
        if trunk and chan.ring and chan is call.first and self.on_call_started is not None:
            self._report_start(call)

    def _on_varset(self, msg: AmiMessage) -> None:
        var = msg.get("Variable")
        if var not in ("DIALSTATUS", "QUEUESTATUS", "VMSTATUS"):
            return
        chan = self._chan(msg)
        if chan is None:
            return
        call = chan.call
        value = msg.get("Value") or ""
        if var == "DIALSTATUS":
            if chan is not call.first:
                return
            if not value:
                if not call.in_queue:
                    call.stage = "dial"
                    call.dialend = ()
            else:
                # the Dial is over, but so is its last leg: the ring time comes from the
                # legs (class call), the same with or without this event
                call.dialstatus = value
        elif var == "QUEUESTATUS":
            call.queue_status = value
        else:
            call.vm_status = value
            if value == "SUCCESS":
                call.vm_left = True
            if call.stage != "vm":
                call.stage = "vm"

    def _on_newexten(self, msg: AmiMessage) -> None:
        app = msg.get("Application")
        if app not in ("Dial", "Queue", "VoiceMail") and app not in IVR_APPS:
            return
        chan = self._chan(msg)
        if chan is None or chan is not chan.call.first:
            return
        self._stage_from_app(chan.call, app or "", msg.get("AppData") or "")

    def _on_newstate(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is None:
            return
        if msg.get("ChannelStateDesc") == "Up" and chan is chan.call.first:
            chan.call.pbx_up = True

    def _on_hangup(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is None:
            return
        ts = msg.get("Timestamp")
        if ts:
            self._sample_time(_float(ts))
        if chan.gone:
            self.stats.drop("duplicate-hangup")
            return
        call = chan.call
        if chan is call.first:
            call.hangup_cause = msg.get("Cause") or ""
            self._ring_decided(call)  # the caller's side is gone: no ring goes on
        elif chan.uid in call.ringing:
            self._leg_ended(call, chan.uid)  # a leg gone without its DialEnd
        self._gone(chan)

    def _on_hangup_request(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is None:
            return
        call = chan.call
        if chan is call.first and not call.caller_hangup:
            call.caller_hangup = True
            if call.in_queue:
                call.queue_hangup = True
            self._ring_decided(call)

    def _on_dialbegin(self, msg: AmiMessage) -> None:
        dest = self._chans.get(msg.get("DestUniqueid") or "")
        src_uid = msg.get("Uniqueid")
        src = self._chans.get(src_uid) if src_uid else None
        if dest is None and src is None:
            self.stats.drop("unknown-channel")
            return
        if dest is not None:
            dest.dialed = True
            call = dest.call
            self._leg_rings(call, dest.uid)
            if dest.trunk and call.first is not dest:
                call.trunk_dialed = True
                if call.callee is None:
                    call.callee = _callee_of(msg.get("DialString")) or clean_caller_id(
                        msg.get("DestCallerIDNum"))
        if src is not None and src is src.call.first and not src.call.in_queue:
            src.call.stage = "dial"

    def _on_dialend(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is None:
            return
        status = msg.get("DialStatus")
        call = chan.call
        if status and chan is call.first and status not in call.dialend \
                and len(call.dialend) < MAX_FACTS_PER_CALL:
            call.dialend += (status,)
        dest = msg.get("DestUniqueid") or ""
        if dest in call.ringing:
            self._leg_ended(call, dest)

    def _on_bridge_enter(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        bridge = msg.get("BridgeUniqueid")
        if chan is None or not bridge:
            return
        self._enter_bridge(chan, bridge)

    def _enter_bridge(self, chan: _Chan, bridge: str) -> None:
        if bridge not in chan.bridges and len(chan.bridges) >= MAX_BRIDGES_PER_CHAN:
            self.stats.drop("bridge-cap")  # BridgeLeave events lost: keep what we have
            return
        self._bridges.setdefault(bridge, set()).add(chan.uid)
        if bridge not in chan.bridges:
            chan.bridges += (bridge,)
        self._check_person(chan.call, bridge)

    def _on_bridge_leave(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        bridge = msg.get("BridgeUniqueid")
        if chan is None or not bridge:
            return
        chan.bridges = tuple(b for b in chan.bridges if b != bridge)
        members = self._bridges.get(bridge)
        if members is not None:
            members.discard(chan.uid)
            if not members:
                del self._bridges[bridge]

    def _on_bridge_destroy(self, msg: AmiMessage) -> None:
        bridge = msg.get("BridgeUniqueid")
        members = self._bridges.pop(bridge, None) if bridge else None
        for uid in members or ():
            chan = self._chans.get(uid)
            if chan is not None:
                chan.bridges = tuple(b for b in chan.bridges if b != bridge)

    def _check_person(self, call: _Call, bridge: str) -> None:
        """Did this bridge connect the call's anchor (its trunk side) to a person?"""
        if not self._bridges.get(bridge):
            return
        first = call.first
        anchors = [c for c in call.chans.values() if c.trunk and not c.gone]
        if first is not None and first not in anchors:
            anchors.append(first)
        for anchor in anchors:
            reached = self._reach(anchor)
            for other in reached:
                if other is anchor or other.helper:
                    continue
                call.connected = True
                is_person = (not other.trunk) or other.dialed
                if anchor is first and first.trunk and is_person and not call.person:
                    call.person = True
                    call.answered_at = self.now
                    self._ring_answered(call)

    def _reach(self, start: _Chan) -> list[_Chan]:
        """Channels connected to ``start`` through bridges and Local ;1/;2 pairs."""
        seen = {start.uid}
        todo = [start]
        out: list[_Chan] = []
        while todo:
            c = todo.pop()
            out.append(c)
            nxt: list[str] = []
            for b in c.bridges:
                nxt.extend(self._bridges.get(b, ()))
            if c.helper and c.name.startswith("Local/"):
                base, _, leg = c.name.rpartition(";")
                twin = self._locals.get(f"{base};{'2' if leg == '1' else '1'}")
                if twin is not None:
                    nxt.append(twin.uid)
            for uid in nxt:
                if uid not in seen:
                    seen.add(uid)
                    other = self._chans.get(uid)
                    if other is not None:
                        todo.append(other)
        return out

    def _on_queue_join(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is None:
            return
        call = chan.call
        call.stage = "queue"
        call.in_queue = True

    def _on_queue_leave(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is None:
            return
        call = chan.call
        call.in_queue = False
        if not call.ringing:
            self._ring_paused(call)  # the queue let the caller go

    def _on_queue_abandon(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is not None:
            chan.call.queue_abandon = True

    def _on_message_waiting(self, msg: AmiMessage) -> None:
        """A mailbox's New count. Sent on the channel that left the message (class call, so
        it reaches the least-privilege user), or later without a channel."""
        new = msg.get("New") or "0"
        box = msg.get("Mailbox") or ""
        if not new.isdigit():
            return
        count = int(new)
        before = self._mwi_new.get(box)
        if box and (box in self._mwi_new or len(self._mwi_new) < DECIDED_MEMORY):
            self._mwi_new[box] = count
        if count == 0 or (before is not None and count <= before):
            return
        uid = msg.get("Uniqueid")
        chan = self._chans.get(uid) if uid else None
        if chan is not None:
            call = chan.call
            call.vm_left = True
            if chan is call.first and not call.person:
                # the caller's own channel stored a message: VoiceMail ran for this call
                call.stage = "vm"
                if box and box not in call.vm_boxes \
                        and len(call.vm_boxes) < MAX_FACTS_PER_CALL:
                    call.vm_boxes += (box,)
                    self._vm_calls[call.linkedid] = call
            return
        # the oldest open call that reached this mailbox (as when every call was scanned)
        hits = [c for c in self._vm_calls.values() if box in c.vm_boxes]
        if hits:
            call = min(hits, key=lambda c: c.seq)
            call.vm_left = True
            if call.linkedid in self._watched:
                self._dirty[call.linkedid] = None

    def _on_newcallerid(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        if chan is None or chan is not chan.call.first:
            return
        pres = (msg.get("CID-CallingPres") or "").partition(" ")[0]
        if pres.isdigit() and int(pres) & 0x60:
            chan.call.withheld_pres = True

    def _on_rename(self, msg: AmiMessage) -> None:
        chan = self._chan(msg)
        new = msg.get("Newname")
        if chan is None or not new:
            return
        self._locals.pop(chan.name, None)
        chan.name = new
        chan.helper = new.partition("/")[0] in HELPER_TECHS
        if chan.helper and new.startswith("Local/"):
            self._locals[new] = chan

    def _on_cel(self, msg: AmiMessage) -> None:
        self._sample_time(self._parse_time(msg.get("EventTime")))
        name = msg.get("EventName")
        if name != "ANSWER" and name != "APP_START":
            return
        app = msg.get("Application") or ""
        if name == "ANSWER" and app != "VoiceMail":
            return
        # CEL spells it UniqueID; class call, so it stands in for Newexten (class dialplan)
        chan = self._chans.get(msg.get("UniqueID") or "")
        if chan is None or chan is not chan.call.first:
            return
        self._stage_from_app(chan.call, app, msg.get("AppData") or "")

    def _on_cdr(self, msg: AmiMessage) -> None:
        self._sample_time(self._parse_time(msg.get("EndTime")))

    # ---------------------------------------------------------------- verdicts
    def _finalise(self, call: _Call, expired: bool = False) -> None:
        del self._calls[call.linkedid]
        self._watched.pop(call.linkedid, None)
        self._dirty.pop(call.linkedid, None)
        self._vm_calls.pop(call.linkedid, None)
        for uid, chan in call.chans.items():
            if self._chans.get(uid) is chan:
                del self._chans[uid]
                if chan.helper:
                    self._locals.pop(chan.name, None)
                for b in chan.bridges:
                    members = self._bridges.get(b)
                    if members is not None:
                        members.discard(uid)
                        if not members:
                            del self._bridges[b]
        self._remember(call.linkedid)
        outcome = self._verdict(call)
        if expired:
            # still open after max_call_age_s: given up, recorded, never texted
            self.stats.drop("expired-call")
            outcome = dataclasses.replace(
                outcome, verdict="ignored", reason=EXPIRED, voicemail_left=False,
                extra={**outcome.extra, "expired": True})
        self.stats.outcomes += 1
        self._ready.append(outcome)

    def _verdict(self, call: _Call) -> CallOutcome:
        first = call.first
        direction: Direction
        if first is not None and first.trunk and first.ring and not first.dialed:
            direction = "inbound"
        elif call.trunk_dialed:
            direction = "outbound"
        else:
            direction = "internal"
        raw = call.caller_raw
        withheld = is_withheld_number(raw) or call.withheld_pres
        region = self.config.default_region
        caller = None if withheld else normalise_caller(raw, region)
        end = call.gone_at if call.gone_at is not None else self.now
        start = call.started_at if call.started_at is not None else end
        ring_start = call.ring_start if call.ring_start is not None else start
        voicemail_left = False
        did = None
        if direction == "inbound":
            did = to_e164(call.did_raw, region) or clean_caller_id(call.did_raw)
            if call.person:
                verdict, reason = "answered", "answered"
            elif call.seeded and not call.reattached and not _known_missed(call):
                # ended while we were down, with no sign yet that nobody answered
                verdict, reason = "ignored", UNKNOWN_AFTER_RESTART
            else:
                verdict, reason = "missed", self._missed_reason(call)
                voicemail_left = reason == "voicemail" and call.vm_left
        else:
            verdict, reason = "ignored", direction
        ring_end = call.ring_end if call.ring_end is not None else end
        extra: dict[str, object] = {}
        if call.resynced:
            extra["resynced"] = True
        if call.seeded:
            extra["restored"] = True
        if direction == "inbound" and did is None and call.did_unseen:
            extra["did_unseen"] = True  # the pipeline may know the DID (a single [[did]])
        return CallOutcome(
            call=call.linkedid, direction=direction, caller=caller, withheld=withheld,
            did=did, verdict=verdict, reason=reason,  # type: ignore[arg-type]
            voicemail_left=voicemail_left, ring_s=max(0.0, ring_end - ring_start),
            pbx="asterisk", started_at=start, ended_at=end,
            caller_name=None if withheld else _clean_name(call.caller_name),
            callee=call.callee if direction == "outbound" else None,
            connected=call.connected or call.person, extra=extra,
        )

    @staticmethod
    def _missed_reason(call: _Call) -> str:
        stage = call.stage
        if stage == "vm":
            return "voicemail"
        if stage == "queue":
            if call.queue_status in QUEUE_GAVE_UP:
                return "queue-timeout"
            if call.queue_hangup or (call.queue_status == "" and call.caller_hangup):
                return "queue-abandon"
            if call.queue_abandon:
                # QueueCallerAbandon without a caller hang-up: the queue timed out
                return "queue-timeout"
            return "queue-abandon"
        if stage == "dial":
            status = call.dialstatus
            if not status:
                ends = set(call.dialend)
                if call.caller_hangup and (not ends or "CANCEL" in ends):
                    return "abandon"
                if ends == {"CANCEL"}:
                    # every leg cancelled and none answered: the caller hung up
                    return "abandon"
                if not ends and call.hangup_cause in UNREACHABLE_CAUSES:
                    return "unavailable"
                if "BUSY" in ends and "NOANSWER" not in ends:
                    return "busy"
                if ends and ends <= {"CHANUNAVAIL", "CONGESTION"}:
                    return "unavailable"
                return "noanswer"
            if status == "BUSY":
                return "busy"
            if status in ("CHANUNAVAIL", "CONGESTION"):
                return "unavailable"
            if status == "CANCEL":
                return "abandon"
            return "noanswer"
        if stage == "ivr" or call.pbx_up:
            return "ivr-abandon"
        if call.hangup_cause in UNREACHABLE_CAUSES and not call.dialend \
                and not call.connected and not call.caller_hangup:
            return "unavailable"
        return "abandon"


def _progress(call: _Call) -> CallProgress:
    """The evidence kept across a restart (``CallStart.progress``)."""
    return CallProgress(
        stage=call.stage, dialstatus=call.dialstatus, dialend=tuple(sorted(call.dialend)),
        in_queue=call.in_queue, queue_status=call.queue_status,
        queue_abandon=call.queue_abandon, queue_hangup=call.queue_hangup,
        caller_hangup=call.caller_hangup, pbx_up=call.pbx_up, person=call.person,
        connected=call.connected, answered_at=call.answered_at, ring_end=call.ring_end,
        vm_left=call.vm_left, vm_boxes=tuple(sorted(call.vm_boxes)),
        withheld_pres=call.withheld_pres)


def _known_missed(call: _Call) -> bool:
    """Before we went down, the ringing had ended with nobody answering (and no Dial leg
    reported an answer whose bridge we may have missed)."""
    return call.ring_end is not None and not call.connected \
        and "ANSWER" not in call.dialend and call.dialstatus != "ANSWER"


def _duration_s(s: str) -> float:
    """CoreShowChannel Duration "HH:MM:SS" → seconds (0 when unreadable)."""
    try:
        parts = [int(p) for p in s.split(":")]
    except ValueError:
        return 0.0
    total = 0
    for p in parts:
        total = total * 60 + p
    return float(total)


def _epoch(s: str) -> float | None:
    """An event's ``Timestamp: 1796192568.822890`` (None when it is not a usable time)."""
    t = _float(s)
    return t if t is not None and math.isfinite(t) and t > 0 else None


def _float(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _clean_name(name: str | None) -> str | None:
    """Display name without control characters; Asterisk's "<unknown>" means none."""
    if not name or name == "<unknown>":
        return None
    cleaned = "".join(ch for ch in name if ch.isprintable())[:64].strip()
    return cleaned or None
