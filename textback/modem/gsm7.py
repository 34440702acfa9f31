"""GSM 03.38 (3GPP TS 23.038 §6.2.1) default 7-bit alphabet, extension table and septet packing.

Why our own tables: the codec must decide, character by character, whether a text fits GSM-7
(it costs half as much as UCS-2), count an extension character as the two septets it really
takes (ESC + code), and pack septets after a User Data Header with the right fill bits
(TS 23.040 §9.2.3.24). Both tables are transcribed from TS 23.038 §6.2.1 and §6.2.1.1; no
national language shift tables are used (a receiving phone need not support them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ESC = 0x1B

# TS 23.038 §6.2.1: code point = index. 0x1B is the escape to the extension table.
DEFAULT_ALPHABET: str = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(DEFAULT_ALPHABET) == 128

# TS 23.038 §6.2.1.1: the characters reached by ESC + code.
EXTENSION_TABLE: dict[int, str] = {
    0x0A: "\f",  # page break
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_BASIC_CODE: dict[str, int] = {c: i for i, c in enumerate(DEFAULT_ALPHABET) if i != ESC}
_EXT_CODE: dict[str, int] = {c: code for code, c in EXTENSION_TABLE.items()}


def septet_cost(char: str) -> int:
    """Septets one character takes in GSM-7: 1 (default), 2 (extension), 0 if it does not fit."""
    if char in _BASIC_CODE:
        return 1
    if char in _EXT_CODE:
        return 2
    return 0


def fits_gsm7(text: str) -> bool:
    """True when every character is in the default alphabet or its extension table."""
    return all(c in _BASIC_CODE or c in _EXT_CODE for c in text)


def non_gsm7_chars(text: str) -> list[str]:
    """The distinct characters that do not fit GSM-7, in order of first appearance."""
    seen: dict[str, None] = {}
    for c in text:
        if c not in _BASIC_CODE and c not in _EXT_CODE:
            seen.setdefault(c, None)
    return list(seen)


def count_septets(text: str) -> int:
    """Septets the text takes in GSM-7 (an extension character counts 2).

    Raises ValueError naming the first character that does not fit.
    """
    total = 0
    for i, c in enumerate(text):
        cost = septet_cost(c)
        if not cost:
            raise ValueError(f"character {c!r} at index {i} is not in the GSM 03.38 alphabet")
        total += cost
    return total


def encode_septets(text: str) -> list[int]:
    """Text to septet values (extension characters become ESC + code).

    Raises ValueError naming the first character that does not fit.
    """
    out: list[int] = []
    for i, c in enumerate(text):
        code = _BASIC_CODE.get(c)
        if code is not None:
            out.append(code)
            continue
        ext = _EXT_CODE.get(c)
        if ext is None:
            raise ValueError(f"character {c!r} at index {i} is not in the GSM 03.38 alphabet")
        out.extend((ESC, ext))
    return out


def decode_septets(septets: Iterable[int]) -> str:
    """Septet values to text, as TS 23.038 §6.2.1.1 tells a receiver to.

    ESC followed by a code the extension table does not define shows the default-alphabet
    character of that code; ESC ESC (reserved for a further table) and a dangling ESC at the
    end show a space. Values are taken modulo 128.
    """
    out: list[str] = []
    escaped = False
    for raw in septets:
        s = raw & 0x7F
        if escaped:
            escaped = False
            if s == ESC:
                out.append(" ")
            else:
                out.append(EXTENSION_TABLE.get(s, DEFAULT_ALPHABET[s]))
        elif s == ESC:
            escaped = True
        else:
            out.append(DEFAULT_ALPHABET[s])
    if escaped:
        out.append(" ")
    return "".join(out)


def fill_bits(header_octets: int) -> int:
    """Fill bits after a UDH of this many octets so the first septet starts on a boundary."""
    return (7 - (header_octets * 8) % 7) % 7


def header_septets(header_octets: int) -> int:
    """Septets a UDH of this many octets (length octet included) occupies, fill bits included."""
    return (header_octets * 8 + 6) // 7


def pack_septets(septets: Sequence[int], header: bytes = b"") -> bytes:
    """Pack septets LSB first after an optional UDH (its length octet included in ``header``).

    The header is written octet-aligned, then fill bits up to the next septet boundary, then
    the septets (TS 23.040 §9.2.3.24). The result has ceil(total_septets * 7 / 8) octets,
    where total_septets = header_septets(len(header)) + len(septets), the value of TP-UDL.
    """
    skip = header_septets(len(header))
    acc = 0
    bits = skip * 7
    for s in septets:
        acc |= (s & 0x7F) << bits
        bits += 7
    length = (bits + 7) // 8
    packed = bytearray(acc.to_bytes(length, "little")) if length else bytearray()
    packed[: len(header)] = header
    return bytes(packed)


def unpack_septets(data: bytes, count: int, header_octets: int = 0) -> list[int]:
    """The ``count`` septets of packed user data, minus those a UDH of ``header_octets`` fills.

    ``count`` is TP-UDL (septets, header included). Raises ValueError when ``data`` is too
    short to hold them.
    """
    need = (count * 7 + 7) // 8
    if len(data) < need:
        raise ValueError(f"{count} septets need {need} octets, only {len(data)} present")
    acc = int.from_bytes(data[:need], "little")
    skip = header_septets(header_octets) if header_octets else 0
    return [(acc >> (7 * i)) & 0x7F for i in range(skip, count)]
