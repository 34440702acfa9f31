"""``[policy]``: when a missed call is texted and how many texts may go, declared once.

Each field says its key in textback.toml, its type, default and check (textback.schema
``setting``); the config loader derives the schema and builds this object from the same
declaration. Keys the admin writes in other units (``cooldown_h``, ``burst_window_min``,
``stale_after_min``) are converted here, so the services only ever see seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

from textback.schema import non_negative, positive, setting

# the text kinds a per-kind cap may name (textback.outbound.gate.KINDS lists their rules)
TEXT_KINDS = ("textback", "followup", "help", "optout-confirm", "optin-confirm", "relay",
              "manual", "staff-forward", "staff-answer", "burst-alert", "callback-unknown",
              "possible-optout-clarify")

# [policy] kind_day_caps defaults: at most this many texts of each kind to one number in
# 24 h. A HELP answer once a day is plenty (200 HELPs must not cost 200 texts); an opt-out or
# opt-in confirmation twice (STOP, START, STOP in one day still confirms); the FCC's one
# clarifying text after a possible opt-out once; a staff answer relayed to a customer and a
# manual `textback send` are people typing, capped generously.
DEFAULT_KIND_DAY_CAPS: Mapping[str, int] = {
    "help": 1, "optout-confirm": 2, "optin-confirm": 2, "relay": 20, "manual": 10,
    "staff-answer": 20, "possible-optout-clarify": 1,
}

_PREFIX = re.compile(r"^\+[0-9]+$")


def _regions(values: Any) -> str | None:
    bad = [v for v in values if v not in phonenumbers.SUPPORTED_REGIONS]
    return f"not region codes: {', '.join(map(repr, bad))}" if bad else None


def _prefixes(values: Any) -> str | None:
    bad = [v for v in values if not _PREFIX.match(v)]
    return f"not number prefixes like \"+1555\": {', '.join(map(repr, bad))}" if bad else None


def _country_caps(values: Any) -> str | None:
    bad = [k for k in values if k != "*" and k not in phonenumbers.SUPPORTED_REGIONS]
    if bad:
        return (f"not region codes: {', '.join(map(repr, bad))} (write e.g. \"US\" = 100, "
                "or \"*\" = 20 for every other country)")
    negative = [k for k, v in values.items() if v < 0]
    if negative:
        return f"caps must be 0 or more: {', '.join(map(repr, negative))}"
    return None


def _kind_caps(values: Any) -> str | None:
    bad = [k for k in values if k not in TEXT_KINDS]
    if bad:
        return (f"not text kinds: {', '.join(map(repr, bad))} (kinds: "
                f"{', '.join(TEXT_KINDS)})")
    negative = [k for k, v in values.items() if v < 0]
    if negative:
        return f"caps must be 0 (no cap) or more: {', '.join(map(repr, negative))}"
    return None


def _hours(value: float) -> float:
    return value * 3600.0


def _minutes(value: float) -> float:
    return value * 60.0


def _kind_day_caps(value: Mapping[str, int]) -> dict[str, int]:
    return {**DEFAULT_KIND_DAY_CAPS, **value}


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Should a missed call be texted, and how many texts may go (docs/config.md)."""

    send_delay_s: float = setting("float", 10.0, check=non_negative)
    short_abandon_s: float = setting("float", 3.0, check=non_negative)
    cooldown_s: float = setting("float", 24.0, key="cooldown_h", check=non_negative,
                                convert=_hours)
    caller_day_cap: int = setting("int", 3, check=positive)
    prefix_hour_cap: int = setting("int", 20, check=positive)
    prefix_digits: int = setting("int", 7, check=positive)
    global_hour_cap: int = setting("int", 200, check=positive)
    skip_fixed_line: bool = setting("bool", True)
    allowed_countries: tuple[str, ...] = setting("str_list", [], check=_regions)
    allow: tuple[str, ...] = setting("str_list", [], check=_prefixes)
    deny: tuple[str, ...] = setting("str_list", [], check=_prefixes)
    test_number_prefixes: tuple[str, ...] = setting("str_list", [], check=_prefixes)
    skip_after_failed_deliveries: int = setting("int", 2, check=non_negative)
    resend_unconfirmed: bool = setting("bool", False)
    max_attempts: int = setting("int", 5, check=positive)
    retry_base_s: float = setting("float", 30.0, check=positive)
    retry_max_s: float = setting("float", 3600.0, check=positive)
    # abuse caps (issue 6): a burst of missed calls from one prefix pauses it
    burst_calls: int = setting("int", 10, check=non_negative)  # 0: no burst detection
    burst_window_s: float = setting("float", 10.0, key="burst_window_min", check=positive,
                                    convert=_minutes)
    burst_pause_s: float = setting("float", 60.0, key="burst_pause_min", check=positive,
                                   convert=_minutes)
    # texts per hour to one country ("*": any other); empty: no per-country cap
    country_hour_caps: Mapping[str, int] = setting("int_map", {}, check=_country_caps,
                                                   convert=dict)
    # a sender unavailable this long hands its texts on
    handover_after_s: float = setting("float", 30.0, check=non_negative)
    # a missed call that ended longer ago than this is not texted (e.g. decided after a long
    # outage): "sorry we missed your call" hours later reads as spam; 0 = no limit
    stale_after_s: float = setting("float", 60.0, key="stale_after_min", check=non_negative,
                                   convert=_minutes)
    # texts of one kind to one number per 24 h (textback.outbound.gate); 0 or absent: no cap
    kind_day_caps: Mapping[str, int] = setting("int_map", {}, check=_kind_caps,
                                               convert=_kind_day_caps)

    def country_hour_cap(self, country: str | None) -> int | None:
        """The hourly cap for texts to numbers of ``country`` (ISO alpha-2), None if none."""
        if country is not None and country in self.country_hour_caps:
            return self.country_hour_caps[country]
        return self.country_hour_caps.get("*")
