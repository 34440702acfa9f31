"""Choosing the encoding and cutting a text into the fewest SMS parts (TS 23.040 §9.2.3.24.1).

One part carries 140 octets of user data: 160 GSM-7 septets or 70 UTF-16 units. A concatenated
part loses room to its User Data Header: 6 octets with an 8-bit reference (153 septets, 67
units), 7 octets with a 16-bit one (152 septets, 66 units: the odd octet is wasted in UCS-2).
An extension character (ESC + code) costs 2 septets and a character outside the BMP is a UTF-16
surrogate pair costing 2 units; neither may be cut between parts, or the receiver shows garbage.
Filling each part greedily with whole characters gives the minimal count, because every
character costs 1 or 2 and a part only closes when the next character does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textback.modem.gsm7 import fits_gsm7, non_gsm7_chars, septet_cost
from textback.modem.pdu_error import PduError

USER_DATA_OCTETS = 140
MAX_PARTS = 255  # the concatenation IE numbers parts in one octet

SINGLE_LIMIT = {"gsm7": 160, "ucs2": 70}
# per part, after the concatenation UDH, by reference size
PART_LIMIT = {("gsm7", 8): 153, ("gsm7", 16): 152, ("ucs2", 8): 67, ("ucs2", 16): 66}


@dataclass(frozen=True)
class SegmentPlan:
    """How a text would be sent: its encoding, the text of each part, its total cost.

    ``offending`` lists the characters that forced UCS-2 (empty for GSM-7), so a config check
    can point at the emoji or curly quote that halves a template's room.
    """

    encoding: str  # "gsm7" | "ucs2"
    parts: list[str]
    units: int  # septets (gsm7) or UTF-16 units (ucs2) of the whole text
    offending: list[str] = field(default_factory=list)


def utf16_units(char: str) -> int:
    """UTF-16 code units of one character: 2 outside the BMP (a surrogate pair), else 1."""
    return 2 if ord(char) > 0xFFFF else 1


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise PduError(f"text must be a str, got {type(text).__name__}")
    for i, c in enumerate(text):
        if 0xD800 <= ord(c) <= 0xDFFF:
            raise PduError(
                f"text has a lone UTF-16 surrogate U+{ord(c):04X} at index {i}: not a character"
            )


def plan_segments(text: str, ref_bits: int = 8) -> SegmentPlan:
    """Encoding and minimal split of ``text``; ``ref_bits`` (8 or 16) sizes the UDH."""
    if ref_bits not in (8, 16):
        raise PduError(f"ref_bits must be 8 or 16, got {ref_bits!r}")
    _check_text(text)
    if fits_gsm7(text):
        encoding, cost, offending = "gsm7", septet_cost, []
    else:
        encoding, cost, offending = "ucs2", utf16_units, non_gsm7_chars(text)
    costs = [cost(c) for c in text]
    units = sum(costs)
    if units <= SINGLE_LIMIT[encoding]:
        return SegmentPlan(encoding, [text], units, offending)
    limit = PART_LIMIT[(encoding, ref_bits)]
    parts: list[str] = []
    start = used = 0
    for i, c in enumerate(costs):
        if used + c > limit:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    if len(parts) > MAX_PARTS:
        raise PduError(
            f"text needs {len(parts)} parts in {encoding}; a concatenated SMS has at most "
            f"{MAX_PARTS}"
        )
    return SegmentPlan(encoding, parts, units, offending)
