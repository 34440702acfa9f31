"""Business hours: is it open, closed or a holiday at a moment, in the business's own time zone.

A text sent at 22:00 should say "we're closed, we'll call you in the morning", not "we'll
call you right back". Times are converted with ``zoneinfo``, so the answer stays right across
daylight-saving changes: a range 09:00-17:00 means local wall-clock time on every day,
whatever the UTC offset that day. ``next_open`` finds the next opening (used for follow-ups
"next business day 10:00").
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from textback.errors import TextbackError

Period = Literal["business_hours", "after_hours", "holiday"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WEEK = {d: "09:00-17:00" for d in DAYS[:5]} | {"sat": "", "sun": ""}

_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

# minutes since local midnight, [start, end)
Span = tuple[int, int]


class HoursError(TextbackError, ValueError):
    """A weekly-hours value that is not a list of HH:MM-HH:MM ranges."""


def parse_day(value: str | list[str]) -> tuple[Span, ...]:
    """``"09:00-12:00, 13:00-17:00"`` or a list of ranges → sorted minute spans.

    An empty string or list means closed all day. ``24:00`` may end a range. A range that
    crosses midnight is refused with the fix: split it over two days.
    """
    items = value if isinstance(value, list) else [v for v in value.split(",") if v.strip()]
    spans: list[Span] = []
    for item in items:
        m = _RANGE.match(item)
        if not m:
            raise HoursError(f"{item!r} is not a range like \"09:00-17:00\"")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise HoursError(f"{item!r}: hours are 00:00 to 24:00")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise HoursError(
                f"{item!r} ends before it starts; for hours past midnight write "
                "\"22:00-24:00\" on one day and \"00:00-06:00\" on the next"
            )
        spans.append((start, end))
    spans.sort()
    for (_, end1), (start2, _) in itertools.pairwise(spans):
        if start2 < end1:
            raise HoursError(f"ranges overlap in {value!r}")
    return tuple(spans)


def check_timezone(name: str) -> str | None:
    """None when ``name`` is an IANA zone this machine knows, else the error."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}: use an IANA name such as \"America/New_York\""
    return None


@dataclass(frozen=True, slots=True)
class Hours:
    """Weekly opening spans (Monday first), one-off holidays and every-year holidays."""

    timezone: str = "UTC"
    week: tuple[tuple[Span, ...], ...] = tuple(parse_day(DEFAULT_WEEK[d]) for d in DAYS)
    holidays: frozenset[dt.date] = frozenset()
    annual_holidays: frozenset[tuple[int, int]] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    def local(self, at: float) -> dt.datetime:
        """The wall-clock time at epoch ``at`` in the business's zone."""
        return dt.datetime.fromtimestamp(at, tz=self._zone)

    def is_holiday(self, day: dt.date) -> bool:
        return day in self.holidays or (day.month, day.day) in self.annual_holidays

    def period(self, at: float) -> Period:
        """Which template applies at epoch ``at``: holiday, business hours or after hours."""
        local = self.local(at)
        if self.is_holiday(local.date()):
            return "holiday"
        minute = local.hour * 60 + local.minute
        for start, end in self.week[local.weekday()]:
            if start <= minute < end:
                return "business_hours"
        return "after_hours"

    def next_open(self, at: float, horizon_days: int = 400) -> float | None:
        """Epoch of the next opening at or after ``at`` (``at`` itself when open); None
        when nothing opens within ``horizon_days`` (a week with no hours at all).

        Openings are local wall-clock times: an opening that falls in a DST gap (02:30 on
        a spring-forward night) moves forward by the length of the gap (03:30).
        """
        if self.period(at) == "business_hours":
            return at
        local = self.local(at)
        day = local.date()
        for _ in range(horizon_days):
            if not self.is_holiday(day):
                for start, _end in self.week[day.weekday()]:
                    candidate = self._instant(day, start)
                    if candidate >= at:
                        return candidate
            day += dt.timedelta(days=1)
        return None

    def _instant(self, day: dt.date, minute: int) -> float:
        naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
        aware = naive.replace(tzinfo=self._zone)
        epoch = aware.timestamp()
        # A wall time inside a spring-forward gap does not round-trip; of its two readings
        # take the later one, so an opening is never earlier than the admin wrote.
        if dt.datetime.fromtimestamp(epoch, tz=self._zone).replace(tzinfo=None) != naive:
            return max(epoch, aware.replace(fold=1).timestamp())
        return epoch
