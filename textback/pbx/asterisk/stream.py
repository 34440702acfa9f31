"""``AsteriskStream``: AMI bytes in, typed events out (parser + call tracker, sans-IO).

The h11 shape: ``receive_data(bytes, now)`` takes whatever arrived (any chunking), and
``next_event()`` returns what it meant, one frozen event at a time, None when there is
nothing more: :class:`~textback.pbx.link.CallStarted` and
:class:`~textback.pbx.link.CallEnded` from the tracker, and for the live client the
responses to its own actions (:class:`AmiReply`, with the CoreShowChannel events of a
resync), the dialplan's ``UserEvent`` (:class:`AmiUserEvent`, an inbound SIP MESSAGE) and
``OriginateResponse`` (:class:`AmiOriginateResponse`, a callback's result). ``feed`` is the
replay shortcut (``textback replay``): bytes in, the calls that became final out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from textback.pbx.asterisk.parser import AmiMessage, AmiParser
from textback.pbx.asterisk.tracker import CallTracker
from textback.pbx.call_start import CallStart
from textback.pbx.link import CallEnded, CallStarted
from textback.pbx.outcome import CallOutcome
from textback.pbx.stream import EventQueue, StreamError, StreamStats, TrackerConfig

# Input with no AMI message in this many bytes is not an AMI stream at all.
NOT_AMI_AFTER = 64 * 1024


@dataclass(frozen=True, slots=True)
class AmiReply:
    """A response to an action, or an event of an action's event list (CoreShowChannel…);
    ``message.get("ActionID")`` says whose."""

    message: AmiMessage


@dataclass(frozen=True, slots=True)
class AmiUserEvent:
    """A dialplan ``UserEvent`` (textback's inbound SIP MESSAGE hand-off)."""

    message: AmiMessage


@dataclass(frozen=True, slots=True)
class AmiOriginateResponse:
    """The result of an ``Originate`` sent with ``Async: true``."""

    message: AmiMessage


StreamEvent = CallStarted | CallEnded | AmiReply | AmiUserEvent | AmiOriginateResponse
_ACTION_LISTS = ("CoreShowChannel", "CoreShowChannelsComplete")


class AsteriskStream(EventQueue[CallStarted | AmiReply | AmiUserEvent | AmiOriginateResponse]):
    """The ``OutcomeStream`` for Asterisk (see ``textback.pbx.stream``)."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.stats = StreamStats()
        self.parser = AmiParser()
        self.tracker: CallTracker = CallTracker(self.config, self.stats)
        # the tracker is this stream's own part: what it learns of a ringing call becomes
        # an event here, like everything else the stream has to say
        self.tracker.on_call_started = self._call_started
        self._events: deque[StreamEvent] = deque()
        self._seen_message = False
        self._parser_drops: dict[str, int] = {}

    # ---------------------------------------------------------- h11 shape
    def receive_data(self, data: bytes, now: float | None = None) -> None:
        """Consume bytes (any chunking); their meaning comes out of ``next_event``."""
        messages = self.parse(data)
        if not self._seen_message:
            if messages:
                self._seen_message = True
            elif self.parser.offset + self.parser.buffered >= NOT_AMI_AFTER:
                raise StreamError(0, f"no AMI message in the first {NOT_AMI_AFTER} bytes: "
                                     "not an Asterisk Manager stream (expected the banner "
                                     "'Asterisk Call Manager/…' or 'Event: …' blocks)")
        self._handle_messages(messages, now)
        self._ended(self.tracker.tick(now))

    def resync_end(self) -> None:
        """The PBX listed every channel it has (CoreShowChannelsComplete, or the listing was
        refused): calls we held that it no longer has are over."""
        self._ended(self.tracker.resync_end())

    def _call_started(self, start: CallStart) -> None:
        self._events.append(CallStarted(start))

    # ---------------------------------------------------------- OutcomeStream (replay)
    def feed(self, data: bytes, now: float | None = None) -> list[CallOutcome]:
        """Replay: consume bytes (any chunking); return the calls that became final."""
        self.receive_data(data, now)
        return self._drain_outcomes()

    def _drain_outcomes(self) -> list[CallOutcome]:
        out = [e.outcome for e in self._events if isinstance(e, CallEnded)]
        self._events.clear()
        return out

    def parse(self, data: bytes) -> list[AmiMessage]:
        """Bytes → messages (counted; parser drops mirrored into ``stats.dropped``)."""
        self.stats.bytes_in += len(data)
        messages = self.parser.feed(data)
        if self.parser.dropped:
            self._sync_parser_drops()
        return messages

    def _handle_messages(self, messages: list[AmiMessage], now: float | None) -> None:
        stats = self.stats
        stats.messages += len(messages)
        handle = self.tracker.handle
        events = self._events
        for msg in messages:
            if msg.kind == "event":
                if msg.name.startswith(_ACTION_LISTS):
                    events.append(AmiReply(msg))
                    continue
                if msg.name == "UserEvent":
                    events.append(AmiUserEvent(msg))
                elif msg.name == "OriginateResponse":
                    events.append(AmiOriginateResponse(msg))
                stats.events += 1
                handle(msg, now)
            else:
                events.append(AmiReply(msg))

    def tick(self, now: float) -> list[CallOutcome]:
        self.advance(now)
        return self._drain_outcomes()

    def finish(self) -> list[CallOutcome]:
        """End of input: a message cut short is counted; every open call is finalised."""
        self.parser.finish()
        self._sync_parser_drops()
        return self._drain_outcomes() + self.tracker.finish()

    @property
    def first_bad(self) -> int | None:
        """The byte offset of the first data that was not this PBX's protocol (replay)."""
        return self.parser.first_bad

    # ---------------------------------------------------------------- helpers
    def new_connection(self) -> None:
        """A fresh socket: new parser (bytes of the old one are gone), same call state."""
        self._sync_parser_drops()
        self._parser_drops = {}
        self.parser = AmiParser()
        self.tracker.resync_begin()

    def _sync_parser_drops(self) -> None:
        """Mirror the parser's own counters into ``stats.dropped`` (prefixed ``parse-``)."""
        for why, n in self.parser.dropped.items():
            seen = self._parser_drops.get(why, 0)
            if n != seen:
                self.stats.drop("parse-" + why, n - seen)
                self._parser_drops[why] = n
