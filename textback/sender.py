"""Senders: the ways a text leaves the office (GSM modem, the PBX's own SIP trunk).

Every sender has a ``name`` (as used in a DID's ``senders`` order, e.g. "modem:front",
"sip"), says whether it can take work right now, and either returns a ``SendResult`` or
raises ``SendError`` saying whether trying again could help (transient) or the next sender
should take over (permanent).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from textback.errors import TextbackError

Commit = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the sender knows after handing a text over.

    ``refs`` holds one message reference per part (TP-MR from +CMGS, None where the
    channel has none). ``confirmed`` is False when the channel's "success" proves nothing
    (Asterisk MessageSend answers Success even when nothing was delivered): the outbox
    then records the row as sent-unconfirmed.
    """

    sender: str
    parts: int
    refs: list[int | None] = field(default_factory=list)
    confirmed: bool = True
    encoding: str | None = None
    detail: str = ""


class SendError(TextbackError):
    """A send that did not happen. ``permanent``: retrying on this sender cannot help."""

    def __init__(self, sender: str, reason: str, *, permanent: bool) -> None:
        super().__init__(f"{sender}: {reason}")
        self.sender = sender
        self.reason = reason
        self.permanent = permanent


class Sender(Protocol):
    """A way out for a text: a GSM modem, Asterisk's MessageSend, FreeSWITCH's chat.

    The dispatcher knows senders only through this contract, so adding a channel never
    touches the outbox. ``send`` awaits ``on_commit`` once, right before its point of no
    return (the Ctrl-Z of AT+CMGS, the PBX action written), and raises ``SendError`` for
    anything that goes wrong before it; whatever fails after it, the dispatcher records the
    text unconfirmed and never resends it blindly.
    """

    name: str

    def available(self) -> bool:
        """False while the channel cannot take work (modem lost, PBX link down)."""
        ...

    async def send(self, number: str, text: str, *, status_report: bool = True,
                   did: str | None = None, on_commit: Commit | None = None) -> SendResult:
        """``did``: the business number the text is from (SIP senders put it in From).

        ``on_commit`` is awaited at the sender's point of no return (the modem's first
        Ctrl-Z, the PBX action about to be written); if it raises, nothing is sent.
        """
        ...
