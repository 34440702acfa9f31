"""Which FreeSWITCH MESSAGE events are texts FROM a customer, and who sent them to which DID.

FreeSWITCH raises a MESSAGE event for every chat it routes — including the ones we send
ourselves with the ``chat`` api: the capture chat-send.esl shows our own outgoing text come
back as ``Event-Name: MESSAGE`` with ``proto: global``, ``dest_proto: sip``, ``blocking``
and ``Delivery-Result-Code: 202``. Treating that echo as a reply would answer ourselves.
A text received by a sofia profile carries ``proto: sip`` and the sender in ``from_user``
(mod_sofia's ``sofia_presence.c`` sets from_user/from_host/to_user for an inbound MESSAGE)
and never a delivery result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class _Event(Protocol):
    body: str

    def get(self, key: str, default: str | None = None) -> str | None: ...


@dataclass(frozen=True, slots=True)
class InboundSip:
    number: str
    did: str | None
    body: str


def inbound_from_esl(event: _Event) -> InboundSip | None:
    """The customer's text in a MESSAGE event, or None for our own echoes and non-texts."""
    if event.get("Delivery-Result-Code") is not None or event.get("blocking") is not None:
        return None
    if (event.get("proto") or "").lower() != "sip":
        return None
    number = event.get("from_user") or ""
    if not number:
        sender = event.get("from") or ""
        number = sender.split("sip:", 1)[-1].split("@", 1)[0]
    if not number:
        return None
    did = event.get("to_user") or None
    return InboundSip(number=number, did=did, body=event.body or "")
