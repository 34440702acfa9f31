"""Follow-up rules and quiet hours as written in the config, parsed and checked.

Pure and dependency-free, so the config loader can validate ``follow_ups`` and
``quiet_hours`` with line numbers without importing the scheduler (textback/followups.py),
which itself needs the config.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from textback.errors import TextbackError

DEFAULT_RULES = ("+2h", "next-business-day 10:00")
DEFAULT_QUIET = "21:00-08:00"
DEFAULT_TEXT = ("{business}: following up on your call. Reply here or CALL and we will ring "
                "you back. Reply STOP to opt out")
MAX_TOUCHES = 3  # the first text and two follow-ups

_OFFSET = re.compile(r"^\+\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)$")
_NEXT_DAY = re.compile(r"^next[- ]business[- ]day\s+(\d{1,2}):(\d{2})$")
_CLOCK_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_UNITS = {"m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


class RuleError(TextbackError, ValueError):
    """A follow-up rule or quiet-hours value that cannot be read (the message says why)."""


@dataclass(frozen=True, slots=True)
class FollowUpRule:
    """One later touch: ``offset`` seconds after the call, or the next business day at
    ``minute`` (minutes after local midnight, DID zone)."""

    kind: Literal["offset", "next_business_day"]
    offset_s: float = 0.0
    minute: int = 0

    def __str__(self) -> str:
        if self.kind == "offset":
            return f"+{self.offset_s / 3600:g}h"
        return f"next-business-day {self.minute // 60:02d}:{self.minute % 60:02d}"


def parse_rule(text: str) -> FollowUpRule:
    """``"+2h"`` / ``"+90m"`` / ``"+1d"`` or ``"next-business-day 10:00"``."""
    s = text.strip().lower()
    m = _OFFSET.match(s)
    if m:
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds <= 0:
            raise RuleError(f"{text!r}: the offset must be more than 0")
        return FollowUpRule("offset", offset_s=seconds)
    m = _NEXT_DAY.match(s)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise RuleError(f"{text!r}: the time must be 00:00 to 23:59")
        return FollowUpRule("next_business_day", minute=hour * 60 + minute)
    raise RuleError(f"{text!r} is not a follow-up rule: write \"+2h\", \"+90m\", \"+1d\" or "
                    "\"next-business-day 10:00\"")


DEFAULT_FOLLOW_UPS: tuple[FollowUpRule, ...] = (FollowUpRule("offset", offset_s=7200.0),
                                                FollowUpRule("next_business_day", minute=600))


def parse_rules(values: Sequence[str]) -> tuple[FollowUpRule, ...]:
    """At most ``MAX_TOUCHES - 1`` rules (the first text is touch 1)."""
    if len(values) > MAX_TOUCHES - 1:
        raise RuleError(f"at most {MAX_TOUCHES - 1} follow-ups ({MAX_TOUCHES} touches with "
                        f"the first text); got {len(values)}")
    return tuple(parse_rule(v) for v in values)


Quiet = tuple[int, int]  # minutes after local midnight: [start, end), may wrap midnight


def parse_quiet(text: str) -> Quiet | None:
    """``"21:00-08:00"`` (wrapping midnight is the usual case); ``""`` = no quiet hours."""
    s = text.strip()
    if not s:
        return None
    m = _CLOCK_RANGE.match(s)
    if not m:
        raise RuleError(f"{text!r} is not a range like \"21:00-08:00\" (\"\" for none)")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise RuleError(f"{text!r}: times are 00:00 to 23:59")
    if (h1, m1) == (h2, m2):
        raise RuleError(f"{text!r}: start and end are the same")
    return h1 * 60 + m1, h2 * 60 + m2


DEFAULT_QUIET_SPAN: Quiet = (21 * 60, 8 * 60)  # = parse_quiet(DEFAULT_QUIET)
