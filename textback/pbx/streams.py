"""Which stream decoder reads which PBX: the one place that knows both listeners.

Kept apart from stream.py (the contract both listeners import) so that the contract does not
import its own implementations.
"""

from __future__ import annotations

import re

from textback.pbx.asterisk.stream import AsteriskStream
from textback.pbx.freeswitch.stream import FreeswitchStream
from textback.pbx.stream import OutcomeStream, TrackerConfig


def make_stream(pbx: str, config: TrackerConfig | None = None) -> OutcomeStream:
    """The stream decoder for ``pbx`` ("asterisk" or "freeswitch")."""
    config = config or TrackerConfig()
    if pbx == "asterisk":
        return AsteriskStream(config)
    if pbx == "freeswitch":
        return FreeswitchStream(config)
    raise ValueError(f"unknown PBX type {pbx!r}: expected 'asterisk' or 'freeswitch'")


_AMI_START = re.compile(rb"(?:Asterisk Call Manager/|(?:Event|Response): [A-Za-z])")
_ESL_HEADER = re.compile(rb"^Content-Type: (?:text/event-|auth/request|command/reply|"
                         rb"api/response|text/disconnect-notice)", re.MULTILINE)
PBX_NAMES = {"asterisk": "an Asterisk AMI capture", "freeswitch":
             "a FreeSWITCH Event Socket capture"}


def sniff(head: bytes) -> str | None:
    """"asterisk" or "freeswitch" when the first bytes of a capture are unmistakably that
    PBX's protocol (the AMI banner or an ``Event:`` block; an ESL ``Content-Type`` header),
    else None. Only used to say which ``--pbx`` a refused file needs."""
    stripped = head.lstrip(b"\r\n")
    if _AMI_START.match(stripped):
        return "asterisk"
    if _ESL_HEADER.search(head[:4096]):
        return "freeswitch"
    return None
