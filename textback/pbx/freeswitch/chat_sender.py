"""FreeSWITCH's ``chat`` API as a ``Sender`` (SIP MESSAGE through the PBX's own profile).

The api call blocks until the far end answers the MESSAGE; the capture ``chat-send.esl``
shows "Sent" with Delivery-Result-Code 202. Anything else is a refusal by this route
(permanent for this sender, the next sender takes over). A link that is down before the
api line is written is a transient ``SendError`` raised before ``on_commit``; one that closes
after it was written, or a chat api that gives no reply in ``timeout_s``, leaves the text
sent-unconfirmed (never resent: FreeSWITCH may have sent the MESSAGE).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from textback.pbx.freeswitch.chat import send_chat
from textback.pbx.freeswitch.errors import EslError, EslNotConnected
from textback.sender import Commit, SendError, SendResult

if TYPE_CHECKING:
    from textback.pbx.freeswitch.client import EslClient

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# how long the chat api may block: sofia answers when the far end answers the MESSAGE, or
# gives up after SIP's transaction timeout (timer F, 32 s)
CHAT_TIMEOUT_S = 40.0


class EslChatSender:
    """``destination`` e.g. ``external/sip:{number}@carrier.example``; ``from_uri`` e.g.
    ``{did}@pbx.example``."""

    def __init__(self, client: EslClient, *, destination: str, from_uri: str,
                 name: str = "sip", timeout_s: float = CHAT_TIMEOUT_S) -> None:
        self.client = client
        self.destination = destination
        self.from_uri = from_uri
        self.name = name
        self.timeout_s = timeout_s

    def available(self) -> bool:
        return self.client.connected.is_set()

    async def send(self, number: str, text: str, *, status_report: bool = True,
                   did: str | None = None, on_commit: Commit | None = None) -> SendResult:
        if not E164.match(number):
            raise SendError(self.name, f"not an E.164 number: {number!r}", permanent=True)
        to_uri = self.destination.replace("{number}", number)
        from_uri = self.from_uri.replace("{did}", did or "").replace("{number}", number)
        if not self.available():  # checked before the point of no return: nothing is lost
            raise SendError(self.name, "ESL link: not connected", permanent=False)
        if on_commit is not None:
            await on_commit()
        try:
            result = await send_chat(self.client, from_uri=from_uri, to_uri=to_uri, text=text,
                                     timeout=self.timeout_s)
        except ValueError as exc:
            raise SendError(self.name, str(exc), permanent=True) from exc
        except EslNotConnected as exc:  # the link dropped before the api line was written
            raise SendError(self.name, f"ESL link: {exc}", permanent=False) from exc
        except (EslError, ConnectionError, TimeoutError, OSError) as exc:
            # written, then the link closed or FreeSWITCH never answered: it may have sent
            # the MESSAGE; never resent
            return SendResult(sender=self.name, parts=1, refs=[None], confirmed=False,
                              detail=f"ESL link failed after chat was written: {exc}")
        if not result.sent:
            raise SendError(self.name, f"chat refused: {result.reply}", permanent=True)
        return SendResult(sender=self.name, parts=1, refs=[None], confirmed=True,
                          detail=result.reply)
