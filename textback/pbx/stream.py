"""The contract both PBX listeners implement: bytes of a PBX event stream in, outcomes out.

``AsteriskStream`` (AMI) and ``FreeswitchStream`` (ESL) are sans-IO: they never read a
socket or a clock by themselves. The caller hands them bytes as they arrive and, for live
streams, the current time; replay passes no time and the trackers use the times carried in
the events themselves (CEL ``EventTime``, ESL ``Event-Date-Timestamp``), so a replay decides
exactly as the live run did.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from textback.errors import TextbackError
from textback.pbx.link import CallEnded
from textback.pbx.outcome import CallOutcome

DEFAULT_TRUNK_CONTEXTS = ("from-trunk", "from-pstn", "from-external", "ext-did")
DEFAULT_EXTERNAL_PROFILES = ("external",)
DEFAULT_EXTERNAL_CONTEXTS = ("public",)
# A call is final this long after its last channel is gone. bench/settle_gap.py measures,
# on every capture we have (Asterisk 22 lab and live, FreeSWITCH 1.10), the gap between a
# call's last hangup and the last event that changed its record (0 ms: none came after)
# and the last event naming it at all (4.3 ms: CEL HANGUP/CHAN_END/LINKEDID_END, which no
# rule reads); 10 ms covers the second twice (docs/benchmarks.md "Settle window"). It was
# 2 s: 2 s before every text.
DEFAULT_SETTLE_S = 0.01
# A call still open this long is given up: it leaves the tracker as ignored/EXPIRED.
DEFAULT_MAX_CALL_AGE_S = 4 * 3600.0
# The reason of a call given up after ``max_call_age_s``: recorded, never texted.
EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """How a tracker recognises the outside world; every field has a safe default.

    Asterisk: a channel is on the trunk side when its dialplan context is one of
    ``trunk_contexts`` or its endpoint (``PJSIP/<endpoint>-…``) is in ``trunk_endpoints``.
    FreeSWITCH: an a-leg is a customer's when its sofia profile is in ``external_profiles``
    or its caller context is in ``external_contexts`` (and it is not ``sip_authorized``).
    ``settle_s``: a call is final this long after its last channel is gone, so late events
    (Cdr, CEL, MessageWaiting) fold in. ``default_region`` normalises national numbers.
    ``max_call_age_s``: a call still open this long after it started (a lost hangup, a
    stuck channel, a flood of calls that never end) is given up: verdict ``ignored``,
    reason ``expired``, so its state is freed and it is recorded, never texted.
    """

    trunk_contexts: tuple[str, ...] = DEFAULT_TRUNK_CONTEXTS
    trunk_endpoints: tuple[str, ...] = ()
    external_profiles: tuple[str, ...] = DEFAULT_EXTERNAL_PROFILES
    external_contexts: tuple[str, ...] = DEFAULT_EXTERNAL_CONTEXTS
    settle_s: float = DEFAULT_SETTLE_S
    default_region: str | None = None
    max_call_age_s: float = DEFAULT_MAX_CALL_AGE_S


@dataclass(slots=True)
class StreamStats:
    """What a stream has seen and what it had to drop (never silently)."""

    bytes_in: int = 0
    messages: int = 0
    events: int = 0
    outcomes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, why: str, n: int = 1) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + n


class StreamError(TextbackError):
    """Input that cannot be a PBX stream at all; names the byte offset where it went wrong."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"byte {offset}: {message}")
        self.offset = offset
        self.message = message


class OutcomeStream(Protocol):
    """Bytes in, call outcomes out (sans-IO)."""

    stats: StreamStats

    def feed(self, data: bytes, now: float | None = None) -> list[CallOutcome]:
        """Consume ``data`` (any chunking); return the calls that became final."""
        ...

    def tick(self, now: float) -> list[CallOutcome]:
        """Advance the clock without input: settle timers may finalise calls."""
        ...

    def finish(self) -> list[CallOutcome]:
        """End of input: finalise every open call (a capture cut mid-call included)."""
        ...

    @property
    def first_bad(self) -> int | None:
        """Byte offset of the first input that was not part of a message (skipped, cut
        short), None while all of it was: a recorded file with bad data is refused."""
        ...


def earliest_due(due: float | None, expiry: list[tuple[float, str]],
                 calls: Mapping[str, Any]) -> float | None:
    """The earlier of a tracker's settle due time and its next open call's expiry.

    ``expiry`` is a heap of (expires_at, call id) with lazy deletion: entries of calls
    decided (or whose expiry moved) since are dropped here, so they cause no wake-up."""
    while expiry and (expiry[0][1] not in calls
                      or calls[expiry[0][1]].expires_at != expiry[0][0]):
        heapq.heappop(expiry)
    if expiry and (due is None or expiry[0][0] < due):
        return expiry[0][0]
    return due


class _SettlingTracker(Protocol):
    def tick(self, now: float) -> list[CallOutcome]: ...
    def next_due(self) -> float | None: ...


E = TypeVar("E")


class EventQueue(Generic[E]):
    """The h11 half both listeners share: what the stream has to say waits in a queue that
    the caller drains with ``next_event``, and time passing (``advance``) may end calls.

    A subclass sets ``tracker`` and ``_events`` and appends its own kinds of event; the
    settle timing (``next_due``) is the tracker's, so the live client wakes exactly when a
    call can become final."""

    tracker: _SettlingTracker
    _events: deque[E | CallEnded]

    def next_event(self) -> E | CallEnded | None:
        """The next event, or None when everything received so far has been told."""
        return self._events.popleft() if self._events else None

    def advance(self, now: float) -> None:
        """Time passed without input: settle timers may finalise calls (``next_event``)."""
        self._ended(self.tracker.tick(now))

    def next_due(self) -> float | None:
        """When ``advance`` may next finalise a call (the tracker's ``next_due``): the live
        client schedules its wake-up for then; None when no call is waiting."""
        return self.tracker.next_due()

    def _ended(self, outcomes: list[CallOutcome]) -> None:
        self._events.extend(CallEnded(o) for o in outcomes)
