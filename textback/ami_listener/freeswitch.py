"""``FreeswitchStream``: the OutcomeStream for FreeSWITCH Event Socket bytes (plain or json).

Glue only: ``EslParser`` cuts frames, ``FsCallTracker`` decides calls. The event format is
detected per frame (``text/event-plain`` or ``text/event-json``), so a capture or a live
link may even switch format midway. Uninteresting events are counted and skipped before
their (large) bodies are decoded: that is what keeps ingest fast.
"""

from __future__ import annotations

from collections.abc import Callable

from textback.ami_listener.esl_parser import (
    CT_API,
    CT_REPLY,
    EslEvent,
    EslParser,
    Frame,
    decode_event,
    peek_event_name,
)
from textback.ami_listener.fs_tracker import TRACKED_EVENTS, FsCallTracker
from textback.ami_listener.stream import StreamError, StreamStats, TrackerConfig
from textback.outcome import CallOutcome

# No ESL frame at all within this many bytes: this is not an Event Socket stream
# (an AMI capture, a binary file): a clear error instead of silently deciding nothing.
NOT_ESL_AFTER = 128 * 1024


class FreeswitchStream:
    """Bytes of an ESL connection in, call outcomes out (sans-IO; see stream.py)."""

    def __init__(self, config: TrackerConfig | None = None,
                 on_event: Callable[[EslEvent], None] | None = None,
                 on_frame: Callable[[Frame], None] | None = None) -> None:
        self.config = config or TrackerConfig()
        self.stats = StreamStats()
        self.parser = EslParser(self.stats)
        self.tracker = FsCallTracker(self.config, self.stats)
        # extra consumers (the live client): every decoded event / every non-event frame
        self.on_event = on_event
        self.on_frame = on_frame
        self.extra_events: frozenset[str] = frozenset()

    def feed(self, data: bytes, now: float | None = None) -> list[CallOutcome]:
        self.parser.feed(data)
        out: list[CallOutcome] = []
        while (frame := self.parser.next_frame()) is not None:
            out.extend(self.handle_frame(frame, now))
        if self.parser.frames == 0 and self.stats.bytes_in > NOT_ESL_AFTER:
            raise StreamError(0, f"no FreeSWITCH Event Socket frame in the first "
                                 f"{self.stats.bytes_in} bytes (is this an ESL capture?)")
        return out

    def handle_frame(self, frame: Frame, now: float | None = None) -> list[CallOutcome]:
        """One complete frame: events go to the tracker; replies to ``on_frame``."""
        if not frame.is_event:
            if self.on_frame is not None:
                self.on_frame(frame)
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
        if self.on_event is not None:
            self.on_event(event)
        if name not in TRACKED_EVENTS:
            self.stats.events += 1
            return self.tracker.tick(now) if now is not None else []
        return self.tracker.handle(event, now)

    def tick(self, now: float) -> list[CallOutcome]:
        return self.tracker.tick(now)

    @property
    def first_bad(self) -> int | None:
        return self.parser.first_bad

    def finish(self) -> list[CallOutcome]:
        out: list[CallOutcome] = []
        for frame in self.parser.finish():
            out.extend(self.handle_frame(frame))
        out.extend(self.tracker.finish())
        return out
