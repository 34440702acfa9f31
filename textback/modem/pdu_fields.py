"""Small TPDU fields: service-centre timestamps, validity period, data coding scheme, TP-ST.

Each is a pure function of a few octets (TS 23.040 §9.2.3.11-12, §9.2.3.15; TS 23.038 §4), kept
apart from the PDU walker so that the rules the spec states case by case read like the spec.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from textback.modem.pdu_error import PduError

# ---------------------------------------------------------------- timestamps (§9.2.3.11)


def _bcd(octet: int) -> int:
    """A swapped semi-octet pair as a two-digit number; -1 when a nibble is not a digit."""
    lo, hi = octet & 0x0F, octet >> 4
    if lo > 9 or hi > 9:
        return -1
    return lo * 10 + hi


def decode_timestamp(octets: bytes) -> dt.datetime | None:
    """TP-SCTS / TP-DT / absolute TP-VP (7 octets) as an aware datetime, None if invalid.

    The time zone octet counts quarter hours; bit 3 of its first (tens) semi-octet is the
    sign. A timestamp that is not a real date (garbage from a broken modem) gives None rather
    than an error: the message it belongs to is still worth keeping.
    """
    if len(octets) != 7:
        return None
    year, month, day, hour, minute, second = (_bcd(o) for o in octets[:6])
    tz = octets[6]
    tens, units = tz & 0x07, tz >> 4
    if min(year, month, day, hour, minute, second) < 0 or units > 9:
        return None
    quarters = tens * 10 + units
    offset = dt.timedelta(minutes=15 * quarters) * (-1 if tz & 0x08 else 1)
    full_year = year + (1900 if year >= 90 else 2000)
    try:
        return dt.datetime(full_year, month, day, hour, minute, second,
                           tzinfo=dt.timezone(offset))
    except ValueError:
        return None


def iso(ts: dt.datetime | None) -> str | None:
    """ISO 8601 with its offset (+HH:MM), as the CLI JSON prints it."""
    return ts.isoformat() if ts is not None else None


# ---------------------------------------------------------------- validity period (§9.2.3.12)

MAX_VALIDITY_MINUTES = 63 * 7 * 24 * 60


def vp_relative_minutes(octet: int) -> int:
    """Minutes a relative TP-VP octet stands for."""
    if octet <= 143:
        return (octet + 1) * 5
    if octet <= 167:
        return 12 * 60 + (octet - 143) * 30
    if octet <= 196:
        return (octet - 166) * 24 * 60
    return (octet - 192) * 7 * 24 * 60


def vp_relative_octet(minutes: int) -> int:
    """The smallest relative TP-VP octet lasting at least ``minutes`` (never expire early)."""
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise PduError(f"validity must be a whole number of minutes, got {minutes!r}")
    if not 1 <= minutes <= MAX_VALIDITY_MINUTES:
        raise PduError(
            f"validity {minutes} minutes is out of range: relative TP-VP covers 5 minutes "
            f"to 63 weeks (1..{MAX_VALIDITY_MINUTES} minutes)"
        )
    if minutes <= 720:
        return (minutes + 4) // 5 - 1
    if minutes <= 1440:
        return 143 + (minutes - 720 + 29) // 30
    day = 24 * 60
    if minutes <= 30 * day:
        return 166 + (minutes + day - 1) // day
    week = 7 * day
    return 192 + (minutes + week - 1) // week


# ---------------------------------------------------------------- data coding scheme (TS 23.038 §4)


@dataclass(frozen=True)
class Dcs:
    """What a TP-DCS octet says: alphabet, message class, compression."""

    encoding: str  # "gsm7" | "8bit" | "ucs2"
    msg_class: int | None
    compressed: bool = False


def decode_dcs(octet: int) -> Dcs:
    """TS 23.038 §4; reserved alphabet values are taken as the GSM 7-bit default, as it says."""
    group = octet >> 4
    if group <= 0x7:  # 00xx / 01xx: general data coding (01xx: marked for automatic deletion)
        alphabet = (octet >> 2) & 0x03
        enc = {0: "gsm7", 1: "8bit", 2: "ucs2", 3: "gsm7"}[alphabet]
        cls = (octet & 0x03) if octet & 0x10 else None
        return Dcs(enc, cls, bool(octet & 0x20))
    if group in (0xC, 0xD):  # message waiting indication, GSM-7
        return Dcs("gsm7", None)
    if group == 0xE:  # message waiting indication, UCS-2
        return Dcs("ucs2", None)
    if group == 0xF:  # data coding / message class
        return Dcs("8bit" if octet & 0x04 else "gsm7", octet & 0x03)
    return Dcs("gsm7", None)  # 1000..1011 reserved


def encode_dcs(encoding: str, msg_class: int | None) -> int:
    """General data coding group: alphabet bits, class bits when a class is asked for."""
    alphabet = {"gsm7": 0x00, "8bit": 0x04, "ucs2": 0x08}[encoding]
    if msg_class is None:
        return alphabet
    if isinstance(msg_class, bool) or msg_class not in (0, 1, 2, 3):
        raise PduError(f"message class must be 0, 1, 2 or 3, got {msg_class!r}")
    return 0x10 | alphabet | msg_class


# ---------------------------------------------------------------- status (§9.2.3.15)

_STATUS_NAMES: dict[int, str] = {
    0x00: "short message received by the SME",
    0x01: "forwarded by the SC to the SME, the SC is unable to confirm delivery",
    0x02: "short message replaced by the SC",
    0x20: "congestion (SC still trying)",
    0x21: "SME busy (SC still trying)",
    0x22: "no response from SME (SC still trying)",
    0x23: "service rejected (SC still trying)",
    0x24: "quality of service not available (SC still trying)",
    0x25: "error in SME (SC still trying)",
    0x40: "remote procedure error",
    0x41: "incompatible destination",
    0x42: "connection rejected by SME",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "SM validity period expired",
    0x47: "SM deleted by originating SME",
    0x48: "SM deleted by SC administration",
    0x49: "SM does not exist",
    0x60: "congestion (SC stopped trying)",
    0x61: "SME busy (SC stopped trying)",
    0x62: "no response from SME (SC stopped trying)",
    0x63: "service rejected (SC stopped trying)",
    0x64: "quality of service not available (SC stopped trying)",
    0x65: "error in SME (SC stopped trying)",
}


def status_category(st: int) -> str:
    """'delivered' (transaction completed), 'pending' (SC still trying) or 'failed'."""
    if st < 0x20:
        return "delivered"
    if st < 0x40:
        return "pending"
    return "failed"


def status_meaning(st: int) -> str:
    """The TS 23.040 wording of a TP-ST value, or the range it falls in."""
    if st in _STATUS_NAMES:
        return _STATUS_NAMES[st]
    if st >= 0x80:
        return "reserved value (taken as failed)"
    if st & 0x1F >= 0x10:
        return {0x00: "SC specific: delivered", 0x20: "SC specific: SC still trying",
                0x40: "SC specific: permanent error", 0x60: "SC specific: SC stopped trying"
                }[st & 0x60]
    return {0x00: "reserved: delivered", 0x20: "reserved: SC still trying",
            0x40: "reserved: permanent error", 0x60: "reserved: SC stopped trying"}[st & 0x60]
