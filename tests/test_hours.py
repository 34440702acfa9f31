"""Business hours in the business's zone: periods, holidays, DST, next opening."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from textback.outbound.hours import DAYS, Hours, HoursError, parse_day

NY = ZoneInfo("America/New_York")


def at(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = NY) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


def hours(**week: str) -> Hours:
    spans = {d: "09:00-17:00" if d in DAYS[:5] else "" for d in DAYS} | week
    return Hours("America/New_York", tuple(parse_day(spans[d]) for d in DAYS),
                 frozenset({dt.date(2026, 11, 26)}), frozenset({(12, 25)}))


def test_parse_day() -> None:
    assert parse_day("09:00-12:00, 13:00-17:30") == ((540, 720), (780, 1050))
    assert parse_day(["13:00-17:00", "08:00-12:00"]) == ((480, 720), (780, 1020))
    assert parse_day("") == () and parse_day("00:00-24:00") == ((0, 1440),)
    for bad in ["9-5", "17:00-09:00", "09:00-25:00", "09:00-12:00,11:00-13:00"]:
        with pytest.raises(HoursError):
            parse_day(bad)


@pytest.mark.parametrize(("when", "period"), [
    (at(2026, 3, 9, 9, 0), "business_hours"),     # Monday opening minute
    (at(2026, 3, 9, 16, 59), "business_hours"),
    (at(2026, 3, 9, 17, 0), "after_hours"),       # closing minute is closed
    (at(2026, 3, 9, 8, 59), "after_hours"),
    (at(2026, 3, 14, 12, 0), "after_hours"),      # Saturday
    (at(2026, 11, 26, 12, 0), "holiday"),         # one-off holiday (Thanksgiving)
    (at(2027, 12, 25, 12, 0), "holiday"),         # every-year holiday
])
def test_period(when: float, period: str) -> None:
    assert hours().period(when) == period


def test_dst_wall_clock_hours_hold_on_both_sides() -> None:
    # 2026-03-08 US spring forward; 2026-11-01 fall back. 09:00 local is open on the
    # Friday before and the Monday after, although the UTC time of 09:00 moved by an hour.
    h = hours()
    before, after = at(2026, 3, 6, 9, 0), at(2026, 3, 9, 9, 0)
    assert h.period(before) == h.period(after) == "business_hours"
    assert dt.datetime.fromtimestamp(before, dt.UTC).hour == 14
    assert dt.datetime.fromtimestamp(after, dt.UTC).hour == 13
    assert h.period(at(2026, 3, 9, 8, 30)) == "after_hours"
    assert h.period(at(2026, 11, 2, 9, 0)) == "business_hours"


def test_next_open_skips_weekend_and_holidays() -> None:
    h = hours()
    friday_evening = at(2026, 11, 20, 18, 0)
    assert h.next_open(friday_evening) == at(2026, 11, 23, 9, 0)
    wednesday_night = at(2026, 11, 25, 20, 0)  # Thursday 26th is a holiday
    assert h.next_open(wednesday_night) == at(2026, 11, 27, 9, 0)
    assert h.next_open(at(2026, 11, 23, 10, 0)) == at(2026, 11, 23, 10, 0)  # already open
    assert Hours("UTC", tuple(() for _ in DAYS)).next_open(0.0) is None


def test_next_open_across_dst_and_in_the_gap() -> None:
    h = hours()
    # Saturday 2026-03-07 evening → Monday 09:00 EDT (one hour less of UTC offset)
    assert h.next_open(at(2026, 3, 7, 18, 0)) == at(2026, 3, 9, 9, 0)
    sunday = hours(sun="02:30-05:00")  # 02:30 does not exist on 2026-03-08
    opening = sunday.next_open(at(2026, 3, 7, 18, 0))
    assert opening is not None
    local = dt.datetime.fromtimestamp(opening, NY)
    assert (local.date(), local.hour, local.minute) == (dt.date(2026, 3, 8), 3, 30)
