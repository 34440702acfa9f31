"""Which stream decoder reads which PBX: the one place that knows both listeners.

Kept apart from stream.py (the contract both listeners import) so that the contract does not
import its own implementations.
"""

from __future__ import annotations

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
