"""``AsteriskStream``: AMI bytes in, call outcomes out (parser + call tracker, sans-IO).

Used by ``textback replay`` on raw captures and by the live client (``ami_client``), which
also needs the responses to its own actions: ``feed`` hands every ``Response`` message (and
the ``CoreShowChannel`` events of a resync) to ``on_response`` instead of the tracker.
"""

from __future__ import annotations

from collections.abc import Callable

from textback.ami_listener.ami_parser import AmiMessage, AmiParser
from textback.ami_listener.ami_tracker import CallTracker
from textback.ami_listener.stream import StreamError, StreamStats, TrackerConfig
from textback.outcome import CallOutcome

# Input with no AMI message in this many bytes is not an AMI stream at all.
NOT_AMI_AFTER = 64 * 1024


class AsteriskStream:
    """The ``OutcomeStream`` for Asterisk (see ``textback.ami_listener.stream``)."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.stats = StreamStats()
        self.parser = AmiParser()
        self.tracker = CallTracker(self.config, self.stats)
        self.on_response: Callable[[AmiMessage], None] | None = None
        # UserEvent messages (the dialplan's inbound SIP MESSAGE hand-off, dialplan/asterisk)
        self.on_user_event: Callable[[AmiMessage], None] | None = None
        # OriginateResponse of our own Originate actions (callback on reply, textback.callback)
        self.on_originate_response: Callable[[AmiMessage], None] | None = None
        self._seen_message = False
        self._parser_drops: dict[str, int] = {}

    # ---------------------------------------------------------- OutcomeStream
    def feed(self, data: bytes, now: float | None = None) -> list[CallOutcome]:
        """Consume bytes (any chunking); return the calls that became final."""
        messages = self.parse(data)
        if not self._seen_message:
            if messages:
                self._seen_message = True
            elif self.parser.offset + self.parser.buffered >= NOT_AMI_AFTER:
                raise StreamError(0, f"no AMI message in the first {NOT_AMI_AFTER} bytes: "
                                     "not an Asterisk Manager stream (expected the banner "
                                     "'Asterisk Call Manager/…' or 'Event: …' blocks)")
        self.handle_messages(messages, now)
        return self.tracker.tick(now)

    def parse(self, data: bytes) -> list[AmiMessage]:
        """Bytes → messages (counted; parser drops mirrored into ``stats.dropped``)."""
        self.stats.bytes_in += len(data)
        messages = self.parser.feed(data)
        if self.parser.dropped:
            self._sync_parser_drops()
        return messages

    def handle_messages(self, messages: list[AmiMessage], now: float | None = None) -> None:
        """Fold already-parsed messages in (the live client parses on its own socket)."""
        stats = self.stats
        stats.messages += len(messages)
        handle = self.tracker.handle
        respond = self.on_response
        for msg in messages:
            if msg.kind == "event":
                if respond is not None and msg.name.startswith("CoreShowChannel"):
                    respond(msg)
                    continue
                if msg.name == "UserEvent" and self.on_user_event is not None:
                    self.on_user_event(msg)
                elif msg.name == "OriginateResponse" and self.on_originate_response is not None:
                    self.on_originate_response(msg)
                stats.events += 1
                handle(msg, now)
            elif respond is not None:
                respond(msg)

    def tick(self, now: float) -> list[CallOutcome]:
        return self.tracker.tick(now)

    def finish(self) -> list[CallOutcome]:
        """End of input: a message cut short is counted; every open call is finalised."""
        self.parser.finish()
        self._sync_parser_drops()
        return self.tracker.finish()

    @property
    def first_bad(self) -> int | None:
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
