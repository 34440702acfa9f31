"""What the shipped least-privilege manager user is sent, applied to real capture bytes.

dialplan/asterisk/manager_textback.conf grants ``read = call,cdr,agent,user`` (no
``dialplan``: no VarSet, no Newexten) and narrows it further with eventfilter lines; the
client logs in with ``Events: DEFAULT_EVENTS``. ``as_filtered`` cuts a plain ``.ami``
capture to exactly the events that user would be sent, ``as_filtered_timed`` does the same
to a timed ``.ami.ts`` capture, keeping each kept message's own ``#TS`` line. Shared by the
least-privilege and the ring-time tests so both cut captures the same way.
"""

from __future__ import annotations

import re

from tests.conftest import REPO
from textback.pbx.asterisk.client import DEFAULT_EVENTS
from textback.pbx.asterisk.timed_capture import TimedCaptureReader

MANAGER_CONF = REPO / "dialplan" / "asterisk" / "manager_textback.conf"


def user_settings() -> tuple[set[str], list[re.Pattern[str]]]:
    """The [textback] user's read classes and eventfilter regexes (simple key = value)."""
    classes: set[str] = set()
    filters: list[re.Pattern[str]] = []
    section = ""
    for raw in MANAGER_CONF.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "textback" and "=" in line:
            key, _, value = (p.strip() for p in line.partition("="))
            if key == "read":
                classes = set(value.split(","))
            elif key == "eventfilter":
                filters.append(re.compile(value))
    return classes, filters


CLASSES, FILTERS = user_settings()
LOGIN_CLASSES = CLASSES & set(DEFAULT_EVENTS.split(","))


def delivered(block: bytes, classes: set[str]) -> bool:
    """Would Asterisk send this event to the textback user logged in with ``classes``?"""
    text = block.decode("utf-8", "replace")
    priv = re.search(r"\r\nPrivilege: ([a-z,]+)", text)
    if priv is None or not classes & set(priv.group(1).split(",")):
        return False
    return any(f.search(text) for f in FILTERS)


def kept(block: bytes) -> bool:
    """Responses and the banner always reach the client; events only when delivered."""
    return not block.startswith(b"Event: ") or delivered(block, LOGIN_CLASSES)


def as_filtered(data: bytes) -> bytes:
    return b"\r\n\r\n".join(b for b in data.split(b"\r\n\r\n") if kept(b))


def as_filtered_timed(data: bytes) -> bytes:
    """A timed capture cut the same way: each kept message with its own ``#TS`` line."""
    reader = TimedCaptureReader()
    out = bytearray()
    start = 0
    for msg in reader.feed(data) + reader.finish():
        end = msg.offset + len(msg.raw)
        if kept(msg.raw):
            out += data[start:end]
        start = end
    return bytes(out)
