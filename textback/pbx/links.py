"""Which adapter speaks to which PBX: the one place that knows both (like ``streams``).

The daemon asks for "a link to the PBX of this kind" and from then on holds only the
``PbxLink`` contract (textback.pbx.link). Kept apart from link.py so the contract does not
import its own implementations.
"""

from __future__ import annotations

from pathlib import Path

from textback.pbx.asterisk.client import AmiClient
from textback.pbx.freeswitch.client import EslClient
from textback.pbx.link import PbxLink
from textback.pbx.stream import TrackerConfig

KINDS = ("asterisk", "freeswitch")


def open_link(kind: str, *, host: str, port: int, user: str, secret: str,
              tracker: TrackerConfig, ping_timeout: float = 10.0,
              message_context: str | None = None, records: Path | None = None) -> PbxLink:
    """A link to a PBX of ``kind`` (not connected yet: ``run()`` connects).

    ``user`` is the AMI user (FreeSWITCH's Event Socket has a password only);
    ``message_context`` the Asterisk dialplan context whose UserEvents are inbound texts;
    ``records`` the PBX's own call records for recovery after downtime (Asterisk: the CEL
    file of cel_sqlite3_custom or cel_custom; FreeSWITCH: the CDR file of mod_cdr_sqlite or
    mod_cdr_csv; None: no recovery).
    """
    if kind == "asterisk":
        return AmiClient(host, port, user, secret, tracker, ping_timeout=ping_timeout,
                         message_context=message_context, cel_source=records)
    if kind == "freeswitch":
        return EslClient(host, port, secret, tracker, ping_timeout=ping_timeout,
                         cdr_source=records)
    raise ValueError(f"unknown PBX type {kind!r}: expected one of {', '.join(KINDS)}")
