"""Sending a text as a SIP MESSAGE through Asterisk's own trunk (AMI ``MessageSend``).

The capture ``messagesend.ami`` shows the limits of this path: Asterisk answers
``Response: Success`` as soon as the MESSAGE is handed to PJSIP — also when nothing listens
at the far end — and raises no event afterwards. So a Success is recorded as
sent-unconfirmed (``SendResult.confirmed = False``), never as delivered. The body always goes
as ``Base64Body`` (UTF-8, emoji intact, and no line break in the text can end the action);
the number must be E.164 before it is put into the destination URI.

A dead AMI link is a transient ``SendError`` raised before ``on_commit`` (the dispatcher
retries or hands the text to the next sender); one that dies while the action is in flight
leaves the text sent-unconfirmed, never resent (Asterisk may have sent it).
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from textback.pbx.asterisk.errors import AmiError, AmiNotConnected
from textback.sender import Commit, SendError, SendResult

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
ActionSender = Callable[[dict[str, str]], Awaitable[Mapping[str, Any]]]

# Responses that mean this sender cannot deliver any text until an admin changes config.
_PERMANENT = ("technology not found", "no such", "not found", "invalid")


class AmiMessageSender:
    """``Sender`` over an AMI connection: ``destination`` is a template such as
    ``pjsip:trunk/sip:{number}@carrier.example`` and ``from_uri`` e.g.
    ``sip:{did}@pbx.example`` ({did} is the DID the text is from)."""

    def __init__(
        self,
        send_action: ActionSender,
        *,
        destination: str,
        from_uri: str,
        name: str = "sip",
        is_connected: Callable[[], bool] | None = None,
    ) -> None:
        if "{number}" not in destination:
            raise ValueError("sip destination must contain {number}, e.g. "
                             "'pjsip:trunk/sip:{number}@carrier.example'")
        self.name = name
        self._send_action = send_action
        self._destination = destination
        self._from_uri = from_uri
        self._is_connected = is_connected
        self._ids = itertools.count(1)

    def available(self) -> bool:
        return self._is_connected() if self._is_connected is not None else True

    def action_for(self, number: str, text: str, did: str | None = None) -> dict[str, str]:
        """The MessageSend action for one text (exposed for tests and dry runs)."""
        if not E164.match(number):
            raise SendError(self.name, f"not an E.164 number: {number!r}", permanent=True)
        return {
            "Action": "MessageSend",
            "ActionID": f"textback-msg-{next(self._ids)}",
            "Destination": self._destination.replace("{number}", number),
            "From": self._from_uri.replace("{did}", did or "").replace("{number}", number),
            "Base64Body": base64.b64encode(text.encode("utf-8")).decode("ascii"),
        }

    async def send(self, number: str, text: str, *, status_report: bool = True,
                   did: str | None = None, on_commit: Commit | None = None) -> SendResult:
        action = self.action_for(number, text, did)
        if not self.available():  # checked before the point of no return: nothing is lost
            raise SendError(self.name, "AMI link: not connected", permanent=False)
        if on_commit is not None:
            await on_commit()
        try:
            response = await self._send_action(action)
        except AmiNotConnected as exc:  # the link dropped before the action was written
            raise SendError(self.name, f"AMI link: {exc}", permanent=False) from exc
        except AmiError as exc:
            # written, then the link failed (lost, no answer): Asterisk may have sent it,
            # so it is never sent again; recorded sent-unconfirmed
            return SendResult(sender=self.name, parts=1, refs=[None], confirmed=False,
                              detail=f"AMI link failed after MessageSend was written: {exc}")
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise SendError(self.name, f"AMI link: {exc}", permanent=False) from exc
        status = str(response.get("Response", "")).lower()
        message = str(response.get("Message", ""))
        if status == "success":
            return SendResult(sender=self.name, parts=1, refs=[None], confirmed=False,
                              detail=message or "MessageSend accepted (delivery unknown)")
        permanent = any(p in message.lower() for p in _PERMANENT) or status == "error"
        raise SendError(self.name, f"MessageSend refused: {message or status}",
                        permanent=permanent)
