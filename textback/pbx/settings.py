"""``[pbx]`` and ``[trunks]``: which PBX to watch and how its outside world is recognised,
declared once beside the adapters that use them (textback.schema ``setting``).

This module knows no textback config machinery beyond textback.schema: the config loader
derives both tables' schema from these classes and builds them, adding what the file does
not hold as it is (the secret read from its file, the port whose default depends on the
PBX type).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers

from textback.pbx.stream import (
    DEFAULT_EXTERNAL_CONTEXTS,
    DEFAULT_EXTERNAL_PROFILES,
    DEFAULT_SETTLE_S,
    DEFAULT_TRUNK_CONTEXTS,
    TrackerConfig,
)
from textback.schema import Secret, non_negative, positive, setting, tcp_port

DEFAULT_PORTS = {"asterisk": 5038, "freeswitch": 8021}
# FreePBX is Asterisk with a web UI: the same AMI, so the same listener (issue 16)
PBX_ALIASES = {"freepbx": "asterisk"}


def _pbx_type(value: Any) -> str | None:
    if value not in DEFAULT_PORTS and value not in PBX_ALIASES:
        return (f"{value!r} is not one of: {', '.join(DEFAULT_PORTS)} "
                "(FreePBX: \"asterisk\" or its alias \"freepbx\")")
    return None


def region(value: Any) -> str | None:
    if value is not None and value not in phonenumbers.SUPPORTED_REGIONS:
        return f"{value!r} is not a region code such as \"US\" or \"GB\""
    return None


def pbx_kind(value: str | None) -> str:
    """The adapter a ``type`` names ("freepbx" is Asterisk)."""
    return PBX_ALIASES.get(value or "", value or "") or "asterisk"


@dataclass(frozen=True, slots=True)
class PbxConfig:
    """``[pbx]``: the PBX link (docs/config.md)."""

    type: str = setting("str", required=True, check=_pbx_type, convert=pbx_kind,
                        doc='"asterisk" or "freeswitch"; "freepbx" is an alias of asterisk')
    host: str = setting("str", "127.0.0.1")
    port: int = setting("int", None, check=tcp_port)  # default: by type (DEFAULT_PORTS)
    user: str = setting("str", "textback")
    secret: Secret | None = setting("str", None, convert=Secret)
    secret_file: Path | None = setting("str", None, convert=Path)
    # a link that answers nothing for this long (AMI Ping / ESL api status) is dead
    ping_timeout_s: float = setting("float", 10.0, check=positive)
    # how long `textback run` waits for the PBX login before telling systemd READY anyway
    # (with a STATUS saying the link is missing); below the unit's TimeoutStartSec
    ready_timeout_s: float = setting("float", 30.0, check=positive)
    # the PBX's own call records, read after a restart or reconnect for the calls that
    # ended while textback was away: Asterisk CEL (cel_sqlite3_custom .db, cel_custom
    # .csv), FreeSWITCH CDR (mod_cdr_sqlite .db, mod_cdr_csv .csv); None: no recovery
    records: Path | None = setting("str", None, convert=Path,
                                   doc="CEL (Asterisk) or CDR (FreeSWITCH) file for recovery")


@dataclass(frozen=True, slots=True)
class TrunksConfig:
    """``[trunks]``: how an inbound customer call is recognised, and the trackers' timing."""

    asterisk_contexts: tuple[str, ...] = setting("str_list", list(DEFAULT_TRUNK_CONTEXTS))
    asterisk_endpoints: tuple[str, ...] = setting("str_list", [])
    freeswitch_profiles: tuple[str, ...] = setting("str_list", list(DEFAULT_EXTERNAL_PROFILES))
    freeswitch_contexts: tuple[str, ...] = setting("str_list", list(DEFAULT_EXTERNAL_CONTEXTS))
    # measured: bench/settle_gap.py (docs/benchmarks.md); the margin is documented there
    settle_s: float = setting("float", DEFAULT_SETTLE_S, check=non_negative)
    default_region: str | None = setting("str", None, check=region)
    # the dialplan context whose UserEvent(TextbackMessage) is a genuine inbound text
    asterisk_message_context: str = setting("str", "textback-message-in")
    # an open call older than this is given up (recorded as ignored/expired, not texted)
    max_call_age_h: float = setting("float", 4.0, check=positive)

    def tracker_config(self) -> TrackerConfig:
        """The listener's view of these settings."""
        return TrackerConfig(
            trunk_contexts=self.asterisk_contexts,
            trunk_endpoints=self.asterisk_endpoints,
            external_profiles=self.freeswitch_profiles,
            external_contexts=self.freeswitch_contexts,
            settle_s=self.settle_s,
            default_region=self.default_region,
            max_call_age_s=self.max_call_age_h * 3600.0,
        )
