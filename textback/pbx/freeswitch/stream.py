"""``FreeswitchStream``: FreeSWITCH Event Socket bytes in, typed events out (sans-IO).

The h11 shape, as for Asterisk: ``receive_data(bytes, now)`` then ``next_event()`` until
None: :class:`~textback.pbx.link.CallEnded` from the tracker, and for the live client the
frames that answer its commands (:class:`EslReply`) and the decoded events it subscribed
to for itself (:class:`EslClientEvent`: MESSAGE, BACKGROUND_JOB, HEARTBEAT). ``feed`` is the
replay shortcut (bytes in, the calls that became final out).

Glue only: ``EslParser`` cuts frames, ``FsCallTracker`` decides calls. The event format is
detected per frame (``text/event-plain`` or ``text/event-json``), so a capture or a live
link may even switch format midway. Uninteresting events are counted and skipped before
their (large) bodies are decoded: that is what keeps ingest fast.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from textback.pbx.freeswitch.parser import (
    CT_API,
    CT_REPLY,
    EslEvent,
    EslParser,
    Frame,
    decode_event,
    peek_event_name,
)
from textback.pbx.freeswitch.tracker import TRACKED_EVENTS, FsCallTracker
from textback.pbx.link import CallEnded
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import EventQueue, StreamError, StreamStats, TrackerConfig

# No ESL frame at all within this many bytes: this is not an Event Socket stream
# (an AMI capture, a binary file): a clear error instead of silently deciding nothing.
NOT_ESL_AFTER = 128 * 1024


@dataclass(frozen=True, slots=True)
class EslReply:
    """A frame that is not an event: auth/request, a command/reply, an api/response, a
    disconnect notice."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class EslClientEvent:
    """A decoded event of a kind the client asked for itself (``extra_events``)."""

    event: EslEvent


StreamEvent = CallEnded | EslReply | EslClientEvent


class FreeswitchStream(EventQueue[EslReply | EslClientEvent]):
    """Bytes of an ESL connection in, call outcomes out (sans-IO; see stream.py)."""

    def __init__(self, config: TrackerConfig | None = None, *, live: bool = False) -> None:
        self.config = config or TrackerConfig()
        self.stats = StreamStats()
        self.parser = EslParser(self.stats)
        self.tracker: FsCallTracker = FsCallTracker(self.config, self.stats)
        # event names the live client reads itself (MESSAGE, BACKGROUND_JOB, HEARTBEAT)
        self.extra_events: frozenset[str] = frozenset()
        self._events: deque[StreamEvent] = deque()
        # a live client's stream: non-event frames are replies to its commands, and the
        # extra events are its own (replay has neither)
        self._client = live

    # ---------------------------------------------------------------- h11 shape
    def receive_data(self, data: bytes, now: float | None = None) -> None:
        """Consume bytes (any chunking); their meaning comes out of ``next_event``."""
        self._ended(self.feed_frames(data, now))

    def resync(self, chans: list[dict[str, Any]], calls: list[dict[str, Any]], now: float,
               known_before: Any) -> None:
        """What FreeSWITCH has now (``show channels``/``show calls``) after a reconnect."""
        self._ended(self.tracker.resync(chans, calls, now, known_before=known_before))

    def feed_frames(self, data: bytes, now: float | None) -> list[CallOutcome]:
        self.parser.feed(data)
        out: list[CallOutcome] = []
        while (frame := self.parser.next_frame()) is not None:
            out.extend(self.handle_frame(frame, now))
        if self.parser.frames == 0 and self.stats.bytes_in > NOT_ESL_AFTER:
            raise StreamError(0, f"no FreeSWITCH Event Socket frame in the first "
                                 f"{self.stats.bytes_in} bytes (is this an ESL capture?)")
        return out

    # ---------------------------------------------------------------- replay
    def feed(self, data: bytes, now: float | None = None) -> list[CallOutcome]:
        """Replay: consume bytes (any chunking); return the calls that became final."""
        return self.feed_frames(data, now)

    def handle_frame(self, frame: Frame, now: float | None = None) -> list[CallOutcome]:
        """One complete frame: events go to the tracker; a live client's replies and own
        events become stream events."""
        if not frame.is_event:
            if self._client:
                self._events.append(EslReply(frame))
            elif frame.content_type not in (CT_REPLY, CT_API) and frame.content_type not in (
                    "auth/request", "text/disconnect-notice", "log/data"):
                self.stats.drop("unknown-frame")
            return []
        name = peek_event_name(frame)
        if name is None:
            self.stats.drop("event-without-name")
            return []
        if name not in TRACKED_EVENTS and name not in self.extra_events:
            self.stats.events += 1
            return self.tracker.tick(now) if now is not None else []
        event = decode_event(frame)
        if event is None:
            self.stats.drop("bad-json" if frame.content_type.endswith("json") else "bad-event")
            return []
        if name in self.extra_events and self._client:
            self._events.append(EslClientEvent(event))
        if name not in TRACKED_EVENTS:
            self.stats.events += 1
            return self.tracker.tick(now) if now is not None else []
        return self.tracker.handle(event, now)

    def tick(self, now: float) -> list[CallOutcome]:
        return self.tracker.tick(now)

    @property
    def first_bad(self) -> int | None:
        """The byte offset of the first data that was not this PBX's protocol (replay)."""
        return self.parser.first_bad

    def finish(self) -> list[CallOutcome]:
        out: list[CallOutcome] = []
        for frame in self.parser.finish():
            out.extend(self.handle_frame(frame))
        out.extend(self.tracker.finish())
        return out
