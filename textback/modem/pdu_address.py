"""TP addresses and the SMSC field (TS 23.040 §9.1.2.5, TS 24.011 §8.2.5.1): semi-octets and TOA.

Encoding is strict on purpose: a destination or SMSC number is either ``+`` and digits
(international) or digits only (national/unknown). Anything else — letters, spaces, CR, LF,
Ctrl-Z, ESC — is refused before a single octet is built, so a hostile caller ID can never be
smuggled into an AT command line through the PDU path. Decoding is lenient: it reads what real
networks send (alphanumeric senders, '*', '#', odd TOA values) and only fails on a field that
runs past the end of the PDU.
"""

from __future__ import annotations

import re

from textback.modem.gsm7 import decode_septets, unpack_septets
from textback.modem.pdu_error import PduError

MAX_DIGITS = 20  # TS 23.040 §9.1.2.5: the address value holds at most 20 digits

TOA_INTERNATIONAL = 0x91  # ext bit, TON 001 international, NPI 0001 ISDN/E.164
TOA_UNKNOWN = 0x81  # ext bit, TON 000 unknown, NPI 0001
TON_INTERNATIONAL = 0x10
TON_ALPHANUMERIC = 0x50

_NUMBER = re.compile(r"\+?[0-9]{1,20}")
_SEMI_OCTET = "0123456789*#abc"  # 0-9, 1010 '*', 1011 '#', 1100-1110 'a'-'c'; 1111 = filler


def _describe(value: str) -> str:
    return ascii(value) if len(value) <= 40 else ascii(value[:40]) + "..."


def parse_number(number: str, what: str = "number") -> tuple[int, str]:
    """(TOA, digits) of a number to encode, or PduError saying why it is not an address."""
    if not isinstance(number, str) or not _NUMBER.fullmatch(number):
        raise PduError(
            f"{what} {_describe(str(number))} is not a valid address: expected '+' and 1-20 "
            "digits (international) or 1-20 digits (national); letters, spaces and control "
            "characters are refused"
        )
    if number.startswith("+"):
        return TOA_INTERNATIONAL, number[1:]
    return TOA_UNKNOWN, number


def swap_digits(digits: str) -> bytes:
    """Digits as swapped semi-octets, an odd count padded with the F filler."""
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def encode_address(number: str, what: str = "number") -> bytes:
    """TP-DA: digit count, TOA, swapped semi-octets."""
    toa, digits = parse_number(number, what)
    return bytes((len(digits), toa)) + swap_digits(digits)


def encode_smsc(number: str | None) -> bytes:
    """The SMSC part AT+CMGS expects in front of the TPDU; 00 = use the SIM's SMSC."""
    if number is None:
        return b"\x00"
    toa, digits = parse_number(number, "SMSC")
    body = bytes((toa,)) + swap_digits(digits)
    return bytes((len(body),)) + body


def read_semi_octets(data: bytes, count: int) -> str:
    """``count`` swapped semi-octet digits; F fillers are skipped wherever they sit."""
    out: list[str] = []
    for octet in data:
        for nibble in (octet & 0x0F, octet >> 4):
            if len(out) >= count:
                break
            if nibble != 0x0F:
                out.append(_SEMI_OCTET[nibble])
    return "".join(out)


def format_address(toa: int, value: bytes, useful: int) -> str:
    """Human form of an address value: '+digits', 'digits' or an alphanumeric name."""
    ton = toa & 0x70
    if ton == TON_ALPHANUMERIC:
        # TS 23.040 §9.1.2.5: GSM-7 packed; the length counts useful semi-octets.
        septets = unpack_septets(value, (useful * 4) // 7)
        if useful % 14 == 0 and septets and septets[-1] == 0:
            # 7 characters packed into 7 whole octets leave 7 zero bits, which read as a
            # trailing '@' when the encoder counted whole octets (14 semi-octets): drop it.
            septets = septets[:-1]
        return decode_septets(septets)
    digits = read_semi_octets(value, useful)
    if ton == TON_INTERNATIONAL and digits:
        return "+" + digits
    return digits


def decode_address(data: bytes, pos: int, what: str) -> tuple[str | None, int, int]:
    """A TP address at ``pos``: (text or None when empty, TOA, position after it)."""
    if pos + 2 > len(data):
        raise PduError(f"{what} address truncated at octet {pos}: needs length and type octets")
    useful, toa = data[pos], data[pos + 1]
    n = (useful + 1) // 2
    end = pos + 2 + n
    if end > len(data):
        raise PduError(
            f"{what} address at octet {pos} says {useful} semi-octets ({n} octets) but only "
            f"{len(data) - pos - 2} octets follow"
        )
    text = format_address(toa, data[pos + 2 : end], useful)
    return (text or None), toa, end


def decode_smsc(data: bytes) -> tuple[str | None, int]:
    """The SMSC part: (number or None for '00' / '0181' / no digits, octets it occupies)."""
    if not data:
        raise PduError("empty PDU: no SMSC length octet at octet 0")
    n = data[0]
    if n == 0:
        return None, 1
    if 1 + n > len(data):
        raise PduError(f"SMSC length octet 0 says {n} octets but only {len(data) - 1} follow")
    if n > 12:
        raise PduError(f"SMSC length {n} at octet 0 exceeds 12 octets: not an SMSC field")
    toa = data[1]
    value = data[2 : 1 + n]
    text = format_address(toa, value, 2 * len(value))
    return (text or None), 1 + n
