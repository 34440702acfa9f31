"""``[[modem]]``: one GSM modem, declared once beside the modem stack that runs it
(textback.schema ``setting``). The PIN is read by the config loader (inline or from
``pin_file``, with the rules of every secret) and handed in as a computed field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textback.numbers import to_e164
from textback.schema import Secret, setting

DEFAULT_SEND_TIMEOUT_S = 120.0
MIN_SEND_TIMEOUT_S = 5.0
MAX_SEND_TIMEOUT_S = 600.0
# the rates a serial port / modem UART actually runs at (termios Bxxx); anything else is a typo
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def e164(value: Any) -> str | None:
    if to_e164(value) != value:
        return f"{value!r} is not a number in E.164 form such as \"+15559870000\""
    return None


def _name(value: Any) -> str | None:
    if not _NAME.match(value):
        return f"{value!r}: use lower-case letters, digits, '-' and '_' (e.g. \"a\", \"office\")"
    return None


def _baud(value: Any) -> str | None:
    if value not in BAUD_RATES:
        return (f"{value} is not a serial rate; use one of "
                f"{', '.join(map(str, BAUD_RATES))} (most modems: 115200)")
    return None


def _pin(value: Any) -> str | None:
    return None if re.fullmatch(r"[0-9]{4,8}", value) else "a SIM PIN is 4 to 8 digits"


def _send_timeout(value: Any) -> str | None:
    if not MIN_SEND_TIMEOUT_S <= value <= MAX_SEND_TIMEOUT_S:
        return (f"must be {MIN_SEND_TIMEOUT_S:g} to {MAX_SEND_TIMEOUT_S:g} seconds (how long "
                "the modem may take to answer a sent PDU; the manuals give 60-120 s)")
    return None


@dataclass(frozen=True, slots=True)
class ModemConfig:
    """One ``[[modem]]``: its stable port path, SIM PIN and SMSC (docs/modem.md)."""

    name: str = setting("str", required=True, check=_name)
    port: str = setting("str", required=True)
    baud: int = setting("int", 115200, check=_baud)
    pin: Secret | None = setting("str", None, check=_pin, convert=Secret)
    pin_file: Path | None = setting("str", None, convert=Path)
    smsc: str | None = setting("str", None, check=e164)
    profile: str | None = setting("str", None)  # simulator dialect (demo/tests only)
    # how long the modem may take to answer a PDU (+CMGS: <mr>) before the text is recorded
    # sent-unconfirmed; the vendor manuals give 60 s (SIM800) to 120 s (EC25)
    send_timeout_s: float = setting("float", DEFAULT_SEND_TIMEOUT_S, check=_send_timeout)
    # the SIM's own number (MSISDN), if known: never a destination (textback.outbound.gate)
    number: str | None = setting("str", None, check=e164)

    @property
    def sender(self) -> str:
        return f"modem:{self.name}"
