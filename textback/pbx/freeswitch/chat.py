"""Sending a text as a SIP MESSAGE through FreeSWITCH: the ESL ``chat`` api (mod_sms).

``api chat sip|<from>|<to>|<text>|text/plain`` blocks until sofia has the far end's answer;
the capture ``chat-send.esl`` shows ``Sent`` for a MESSAGE the gateway answered
``202 Accepted`` (the MESSAGE event beside it carries ``Delivery-Result-Code: 202``).

The api line is one ``|``-separated command line ended by a blank line, so the text must
not be able to break it. Policy (chosen so a customer's text is never refused for
punctuation, yet can never inject a field or a command):

* ``|`` in the text is **escaped** to ``¦`` (U+00A6 BROKEN BAR), which reads the same;
* CR, LF and TAB become a single space (a line break would end the ESL command);
* every other control character (C0, DEL, C1: NUL, Ctrl-Z, ESC...) is **removed**;
* ``from_uri`` / ``to_uri`` come from our config and the outbox, never from a customer:
  one holding ``|``, whitespace or a control character is **rejected** (ValueError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_LINEBREAKS = re.compile(r"\r\n|[\r\n\t]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_BAD_URI = re.compile(r"[|\s\x00-\x1f\x7f-\x9f]")
MAX_TEXT = 4000  # SIP MESSAGE over UDP must fit a datagram with its headers


class ApiClient(Protocol):
    async def api(self, cmd: str, timeout: float = ...) -> str: ...


@dataclass(frozen=True, slots=True)
class ChatResult:
    """``sent``: FreeSWITCH answered ``Sent`` (the far end accepted the MESSAGE)."""

    sent: bool
    reply: str
    text_sent: str

    @property
    def detail(self) -> str:
        return self.reply


def clean_chat_text(text: str) -> str:
    """The text as it can travel inside a chat api line (see the module docstring)."""
    text = _LINEBREAKS.sub(" ", text)
    text = _CONTROL.sub("", text)
    return text.replace("|", "\u00a6")


def chat_command(*, from_uri: str, to_uri: str, text: str) -> str:
    """The ``chat`` api argument line (exposed for tests and dry runs)."""
    for label, uri in (("from_uri", from_uri), ("to_uri", to_uri)):
        if not uri or _BAD_URI.search(uri):
            raise ValueError(f"{label} must not be empty or hold '|', spaces or control "
                             f"characters: {uri!r}")
    body = clean_chat_text(text)
    if not body.strip():
        raise ValueError("empty text")
    if len(body.encode("utf-8")) > MAX_TEXT:
        raise ValueError(f"text longer than {MAX_TEXT} bytes")
    return f"chat sip|{from_uri}|{to_uri}|{body}|text/plain"


async def send_chat(client: ApiClient, *, from_uri: str, to_uri: str, text: str,
                    timeout: float = 30.0) -> ChatResult:
    """Send ``text`` from ``from_uri`` (e.g. ``+15559870000@pbx``) to ``to_uri`` (e.g.
    ``external/sip:+15552220001@carrier``) through ``client.api``."""
    cmd = chat_command(from_uri=from_uri, to_uri=to_uri, text=text)
    reply = (await client.api(cmd, timeout=timeout)).strip()
    return ChatResult(sent=reply == "Sent", reply=reply[:200],
                      text_sent=cmd.split("|", 3)[3].rsplit("|", 1)[0])
