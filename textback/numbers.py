"""Caller-ID hygiene shared by every listener: withheld detection and E.164 normalisation.

Caller IDs come from the outside world and may hold anything (CR/LF, Ctrl-Z, AT commands,
RTL marks). Nothing here trusts them: ``clean_caller_id`` keeps only what a dialable number
can contain, so a hostile value can never travel further as raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

# Values PBXes and carriers put in the caller-ID number when the caller is hidden.
WITHHELD_TOKENS = frozenset(
    {
        "",
        "anonymous",
        "unknown",
        "<unknown>",
        "restricted",
        "private",
        "withheld",
        "unavailable",
        "blocked",
        "0000000000",
    }
)

_DIALABLE = re.compile(r"[^0-9+*#]")


def is_withheld_number(raw: str | None) -> bool:
    """True when the caller-ID number itself says the caller is hidden."""
    if raw is None:
        return True
    return raw.strip().lower() in WITHHELD_TOKENS


def clean_caller_id(raw: str | None, max_len: int = 32) -> str | None:
    """Strip everything but digits, '+', '*', '#' (a leading '+' only); None when empty."""
    if raw is None:
        return None
    s = _DIALABLE.sub("", raw.strip())
    if not s:
        return None
    s = s[0] + s[1:].replace("+", "")
    return s[:max_len]


@lru_cache(maxsize=4096)
def to_e164(raw: str | None, default_region: str | None = None) -> str | None:
    """E.164 form of ``raw`` when it is a possible number, else None.

    A number already written with '+' needs no region; a national one needs
    ``default_region`` (ISO 3166 alpha-2, e.g. "US", "GB"). Cached: a pure function of
    its arguments, asked for the same few DIDs and callers again and again.
    """
    cleaned = clean_caller_id(raw)
    if cleaned is None or any(c in cleaned for c in "*#"):
        return None
    if cleaned.startswith("00") and not cleaned.startswith("+"):
        cleaned = "+" + cleaned[2:]
    try:
        parsed = phonenumbers.parse(cleaned, None if cleaned.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_caller(raw: str | None, default_region: str | None = None) -> str | None:
    """The caller as the outcome reports it: E.164 when it can be, else the cleaned digits.

    Internal extensions ("102") stay as they are; withheld values give None.
    """
    if is_withheld_number(raw):
        return None
    e164 = to_e164(raw, default_region)
    return e164 if e164 is not None else clean_caller_id(raw)


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """What the number plan (phonenumbers, offline) says of a number written with '+':
    ``parsed`` False when it cannot be parsed at all (then nothing else is known);
    ``kind`` a ``phonenumbers.PhoneNumberType``; ``region`` ISO alpha-2, None outside
    any plan (the fictional +1555 range)."""

    parsed: bool
    valid: bool = False
    kind: int = phonenumbers.PhoneNumberType.UNKNOWN
    region: str | None = None


@lru_cache(maxsize=4096)
def number_plan(number: str) -> NumberPlan:
    """The plan's facts about ``number``, worked out once per number.

    Why cached: the policy, the outbox gate and the per-country count each ask them of
    every missed caller, and for a +1 number phonenumbers tries the patterns of every
    NANP region (about 0.1 ms each time, the largest part of deciding a call)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return NumberPlan(False)
    valid = phonenumbers.is_valid_number(parsed)
    return NumberPlan(True, valid,
                      phonenumbers.number_type(parsed) if valid
                      else phonenumbers.PhoneNumberType.UNKNOWN,
                      phonenumbers.region_code_for_number(parsed))
