"""The one contract between the daemon and a PBX: ``PbxLink``.

Asterisk (AMI, MessageSend, Originate, CEL) and FreeSWITCH (ESL, chat, originate, CDR) are
different protocols with the same few jobs for textback: say when a call started and how it
ended, hand over a text a customer sent to the business's number, carry a text out, place a
callback, and — after textback itself was away — tell which calls ended meanwhile. Each
adapter (``textback.pbx.asterisk.link``, ``textback.pbx.freeswitch.link``) implements this
protocol completely, so the daemon holds a ``PbxLink`` and never asks which PBX it has.

What a link reports comes out of one place, in order: ``await link.next_event()`` returns
typed, frozen events (:class:`CallStarted`, :class:`CallEnded`, :class:`TextReceived`), the
same shape as the sans-IO parsers underneath (h11's ``next_event``). The link is their only
producer and the daemon their only consumer; nothing is delivered by a callback set on
another object's attribute. Actions (a text, a callback) are awaited methods that raise only
the adapter's documented errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from textback.pbx.call_start import CallStart
from textback.pbx.outcome import CallOutcome
from textback.sender import Sender


@dataclass(frozen=True, slots=True)
class CallStarted:
    """An inbound call is ringing: what the tracker knew of it (kept across a restart)."""

    start: CallStart


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call is over and decided; ``outcome.extra["recovered"]`` marks one recovered from
    the PBX's own records (CEL, CDR) after textback was away."""

    outcome: CallOutcome


@dataclass(frozen=True, slots=True)
class TextReceived:
    """A text a customer sent to one of the business's numbers through the PBX (a SIP
    MESSAGE): ``number`` the sender (None when it could not be read), ``did`` the number it
    was sent to."""

    number: str | None
    did: str | None
    body: str


LinkEvent = CallStarted | CallEnded | TextReceived


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """A callback: ring ``ring`` (staff: an Asterisk channel, a FreeSWITCH dial string);
    when answered, dial ``number`` in ``context`` showing ``did`` and ``caller_name``."""

    ring: str
    number: str
    context: str
    did: str
    caller_name: str
    timeout_s: int
    tag: str  # ours: the callbacks row id, set as a channel variable


@dataclass(frozen=True, slots=True)
class OriginateResult:
    """How a callback went: ``answered`` when staff picked up; ``ref`` the PBX's id."""

    answered: bool
    detail: str
    ref: str | None = None


class LinkEvents:
    """The ``next_event`` half of a ``PbxLink``, shared by both adapters: the link reports
    into an unbounded queue (a report never waits for the consumer, so the socket reader is
    never held up by the store), and its one consumer takes them in order."""

    def __init__(self) -> None:
        self._out: asyncio.Queue[LinkEvent] = asyncio.Queue()

    def _report(self, event: LinkEvent) -> None:
        self._out.put_nowait(event)

    async def next_event(self) -> LinkEvent:
        """The next thing the PBX reported, in the order reported."""
        return await self._out.get()

    def drain(self) -> list[LinkEvent]:
        """The events reported but not taken yet, without waiting."""
        out = []
        while not self._out.empty():
            out.append(self._out.get_nowait())
        return out


class PbxLink(Protocol):
    """One PBX, kept connected (see the module doc)."""

    kind: str  # "asterisk" | "freeswitch"
    host: str
    port: int
    reconnects: int
    refused: dict[str, int]  # inputs refused by kind (e.g. a forged UserEvent)

    @property
    def connected(self) -> asyncio.Event:
        """Set while logged in."""
        ...

    async def run(self) -> None:
        """Connect and stay connected until ``stop()``; raises on refused credentials."""
        ...

    def stop(self) -> None:
        ...

    def seed(self, starts: list[CallStart]) -> int:
        """Calls in progress when the process last stopped (before ``run``)."""
        ...

    async def next_event(self) -> LinkEvent:
        """The next thing the PBX reported, in order."""
        ...

    def message_sender(self, destination: str, from_uri: str,
                       profile: str | None) -> Sender:
        """A ``Sender`` that carries texts out as SIP MESSAGE through this PBX."""
        ...

    @property
    def dial_context(self) -> str:
        """Where a callback dials the customer unless a DID names its own context."""
        ...

    async def originate(self, request: OriginateRequest) -> OriginateResult:
        """Place a callback and wait for staff to answer or not (raises the adapter's
        error when the request could not be made at all)."""
        ...

    def drain(self) -> list[LinkEvent]:
        """The events reported but not taken yet, without waiting (after ``run`` returned)."""
        ...

    async def recover(self, since: float, skip: frozenset[str]) -> list[CallOutcome]:
        """Calls that ended after ``since`` according to the PBX's own records, except
        those in ``skip``; [] when no record source is configured. Raises the adapter's
        documented error when the source is missing, locked or foreign."""
        ...


async def run_emitting_calls(link: PbxLink, emit: Callable[[CallOutcome], None]) -> None:
    """``textback listen``: run ``link`` until it stops, handing every decided call to
    ``emit`` as it is decided (and those the last tick decided after ``run`` returned). The
    link's own errors (a refused login) propagate."""
    async def consume() -> None:
        while True:
            event = await link.next_event()
            if isinstance(event, CallEnded):
                emit(event.outcome)

    consumer = asyncio.create_task(consume())
    try:
        await link.run()
    finally:
        consumer.cancel()
        for event in link.drain():
            if isinstance(event, CallEnded):
                emit(event.outcome)
