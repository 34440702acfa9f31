"""A small SMS-DELIVER and SMS-STATUS-REPORT encoder: what the simulated network hands the modem.

textback itself never builds these (a modem only receives them), so this lives with the
simulator. Layout per 3GPP TS 23.040 §9.2.2.1 (DELIVER) and §9.2.2.3 (STATUS-REPORT); the
alphabet, septet packing and splitting are the codec's (textback.modem.gsm7 / plan_segments),
and tests check every PDU built here against ``decode_pdu``.
"""

from __future__ import annotations

import datetime as dt

from textback.modem import gsm7
from textback.modem.pdu import plan_segments

_TOA_INTERNATIONAL = 0x91
_TOA_UNKNOWN = 0x81


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def _address(number: str) -> bytes:
    digits = number.lstrip("+")
    if not digits.isdigit() or not 1 <= len(digits) <= 20:
        raise ValueError(f"simulated sender {number!r} must be '+' and digits")
    toa = _TOA_INTERNATIONAL if number.startswith("+") else _TOA_UNKNOWN
    return bytes((len(digits), toa)) + _semi_octets(digits)


def _smsc(number: str | None) -> bytes:
    if not number:
        return b"\x00"
    digits = number.lstrip("+")
    toa = _TOA_INTERNATIONAL if number.startswith("+") else _TOA_UNKNOWN
    body = bytes((toa,)) + _semi_octets(digits)
    return bytes((len(body),)) + body


def _bcd(value: int) -> int:
    return ((value % 10) << 4) | (value // 10)


def scts(when: dt.datetime) -> bytes:
    """TP-SCTS: swapped-BCD date and time, time zone in quarter hours (sign in bit 3)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    offset = when.utcoffset() or dt.timedelta(0)
    quarters = int(abs(offset.total_seconds()) // 900)
    tz = _bcd(quarters) | (0x08 if offset.total_seconds() < 0 else 0)
    return bytes((
        _bcd(when.year % 100), _bcd(when.month), _bcd(when.day),
        _bcd(when.hour), _bcd(when.minute), _bcd(when.second), tz,
    ))


def encode_deliver(
    sender: str,
    text: str,
    *,
    smsc: str | None = "+447785016005",
    when: dt.datetime | None = None,
    concat_ref: int = 0x42,
) -> list[tuple[str, int]]:
    """(pdu hex with SMSC octets, tpdu_length) per part, split like a real network would."""
    when = when or dt.datetime.now(dt.UTC).replace(microsecond=0)
    plan = plan_segments(text)
    count = len(plan.parts)
    out: list[tuple[str, int]] = []
    for i, part in enumerate(plan.parts, 1):
        header = bytes((5, 0x00, 3, concat_ref & 0xFF, count, i)) if count > 1 else b""
        first = 0x04 | (0x40 if header else 0)  # SMS-DELIVER, TP-MMS (no more messages)
        if plan.encoding == "gsm7":
            septets = gsm7.encode_septets(part)
            udl = (gsm7.header_septets(len(header)) if header else 0) + len(septets)
            ud = gsm7.pack_septets(septets, header)
            dcs = 0x00
        else:
            ud = header + part.encode("utf-16-be")
            udl = len(ud)
            dcs = 0x08
        tpdu = bytes((first,)) + _address(sender) + bytes((0x00, dcs)) + scts(when)
        tpdu += bytes((udl,)) + ud
        out.append(((_smsc(smsc) + tpdu).hex().upper(), len(tpdu)))
    return out


def encode_deliver_ucs2_octets(
    sender: str,
    payload: bytes,
    *,
    smsc: str | None = "+447785016005",
    when: dt.datetime | None = None,
) -> tuple[str, int]:
    """One UCS-2 (TP-DCS 0x08) DELIVER whose user data is ``payload`` exactly as given: a
    sender's broken UCS-2 (a lone surrogate, an odd octet count) that ``encode_deliver``,
    which starts from valid text, cannot produce. (pdu hex with SMSC octets, tpdu_length)"""
    when = when or dt.datetime.now(dt.UTC).replace(microsecond=0)
    tpdu = bytes((0x04,)) + _address(sender) + bytes((0x00, 0x08)) + scts(when)
    tpdu += bytes((len(payload),)) + payload
    return (_smsc(smsc) + tpdu).hex().upper(), len(tpdu)


def encode_status_report(
    recipient: str,
    message_reference: int,
    *,
    status: int = 0,
    smsc: str | None = "+447785016005",
    submitted: dt.datetime | None = None,
    discharged: dt.datetime | None = None,
) -> tuple[str, int]:
    """(pdu hex, tpdu_length) of an SMS-STATUS-REPORT; status 0 = delivered
    (TS 23.040 §9.2.3.15)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    tpdu = bytes((0x06, message_reference & 0xFF)) + _address(recipient)
    tpdu += scts(submitted or now) + scts(discharged or now) + bytes((status & 0xFF,))
    return (_smsc(smsc) + tpdu).hex().upper(), len(tpdu)
