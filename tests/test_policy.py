"""Policy: table-driven, one row per rule, each skip with its reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from textback.config import Config, parse_config
from textback.outbound.policy import PolicySnapshot, decide, number_prefix, reached_number
from textback.pbx.outcome import CallOutcome

CONFIG = """\
[pbx]
type = "asterisk"
secret = "x"
[sip]
destination = "pjsip:trunk/sip:{number}@127.0.0.1:5180"
[policy]
test_number_prefixes = ["+1555"]
deny = ["+1555666"]
caller_day_cap = 3
prefix_hour_cap = 5
global_hour_cap = 9
[[did]]
number = "+15559870000"
business = "Acme"
[[did]]
number = "+442079460000"
business = "Acme UK"
text_reasons = ["noanswer", "busy", "abandon"]
"""

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def config() -> Config:
    return parse_config(CONFIG, Path("/x/t.toml"), check_permissions=False)


def call(**kw: object) -> CallOutcome:
    base: dict[str, object] = dict(
        call="1.1", direction="inbound", caller="+15551230001", withheld=False,
        did="+15559870000", verdict="missed", reason="noanswer", ring_s=8.0,
        ended_at=NOW - 1)
    base.update(kw)
    return CallOutcome(**base)  # type: ignore[arg-type]


UK = {"did": "+442079460000"}

CASES: list[tuple[str, dict[str, object], PolicySnapshot, str | None]] = [
    ("missed call is texted", {}, PolicySnapshot(), None),
    ("ended 59 min ago is still texted", {"ended_at": NOW - 59 * 60}, PolicySnapshot(), None),
    ("ended 61 min ago is stale", {"ended_at": NOW - 61 * 60}, PolicySnapshot(), "stale"),
    ("answered", {"verdict": "answered", "reason": "answered"}, PolicySnapshot(), "not-missed"),
    ("internal", {"direction": "internal", "verdict": "ignored", "reason": "internal"},
     PolicySnapshot(), "not-inbound"),
    ("outbound", {"direction": "outbound", "verdict": "ignored"}, PolicySnapshot(),
     "not-inbound"),
    ("withheld", {"withheld": True, "caller": None}, PolicySnapshot(), "withheld"),
    ("no caller", {"caller": None}, PolicySnapshot(), "no-caller"),
    ("extension as caller", {"caller": "102"}, PolicySnapshot(), "invalid-number"),
    ("unknown DID", {"did": "+15559879999"}, PolicySnapshot(), "unknown-did"),
    ("short abandon", {"reason": "abandon", "ring_s": 1.0}, PolicySnapshot(), "short-abandon"),
    ("long abandon", {"reason": "abandon", "ring_s": 6.0}, PolicySnapshot(), None),
    ("reason not texted on this DID", {**UK, "caller": "+447700900123",
                                        "reason": "voicemail"}, PolicySnapshot(),
     "reason-not-texted"),
    ("UK mobile on UK DID", {**UK, "caller": "+447400123456"}, PolicySnapshot(), None),
    ("UK landline skipped", {**UK, "caller": "+442079460123"}, PolicySnapshot(), "fixed-line"),
    ("premium rate", {**UK, "caller": "+448712345678"}, PolicySnapshot(), "premium-rate"),
    ("shared cost (FR 0810)", {**UK, "caller": "+33810123456"}, PolicySnapshot(), "shared-cost"),
    ("invalid UK number", {**UK, "caller": "+447700900123"}, PolicySnapshot(),
     "invalid-number"),
    ("foreign mobile", {**UK, "caller": "+4915112345678"}, PolicySnapshot(),
     "country-not-allowed"),
    ("fictional +1555 allowed only by test prefix", {}, PolicySnapshot(), None),
    ("denied prefix", {"caller": "+15556661234"}, PolicySnapshot(), "denied"),
    ("opted out", {}, PolicySnapshot(opted_out=True), "opted-out"),
    ("reached after the call", {}, PolicySnapshot(reached_at=NOW - 0.5), "reached"),
    ("reached before the call", {}, PolicySnapshot(reached_at=NOW - 100), None),
    ("cooldown", {}, PolicySnapshot(last_text_at=NOW - 3600), "cooldown"),
    ("cooldown over", {}, PolicySnapshot(last_text_at=NOW - 90_000), None),
    ("caller day cap", {}, PolicySnapshot(texts_to_number_day=3), "cap-caller-day"),
    ("prefix hour cap", {}, PolicySnapshot(texts_to_prefix_hour=5), "cap-prefix-hour"),
    ("global hour cap", {}, PolicySnapshot(texts_global_hour=9), "cap-global-hour"),
    ("undeliverable", {}, PolicySnapshot(failed_deliveries=2), "undeliverable"),
    ("opt-out wins over caps", {}, PolicySnapshot(opted_out=True, texts_global_hour=99),
     "opted-out"),
]


@pytest.mark.parametrize(("name", "kw", "snap", "skip"), CASES, ids=[c[0] for c in CASES])
def test_policy_table(config: Config, name: str, kw: dict[str, object], snap: PolicySnapshot,
                      skip: str | None) -> None:
    decision = decide(call(**kw), config, snap, NOW)
    if skip is None:
        assert decision.texts, decision
        assert decision.not_before == NOW + 10.0 and decision.did is not None
    else:
        assert (decision.action, decision.reason) == ("skip", skip), decision


def test_without_test_prefixes_fictional_numbers_are_invalid(config: Config) -> None:
    strict = replace(config, policy=replace(config.policy, test_number_prefixes=()))
    assert decide(call(), strict, PolicySnapshot(), NOW).reason == "invalid-number"


def test_allow_list_and_explicit_countries(config: Config) -> None:
    allow = replace(config, policy=replace(config.policy, allow=("+1555123",)))
    assert decide(call(), allow, PolicySnapshot(), NOW).texts
    assert decide(call(caller="+15559990000"), allow, PolicySnapshot(), NOW).reason == \
        "not-allowed"
    de = replace(config, policy=replace(config.policy, allowed_countries=("GB", "DE")))
    assert decide(call(**UK, caller="+4915112345678"), de, PolicySnapshot(), NOW).texts
    landline_ok = replace(config, policy=replace(config.policy, skip_fixed_line=False))
    assert decide(call(**UK, caller="+442079460123"), landline_ok, PolicySnapshot(), NOW).texts


def test_reached_number() -> None:
    assert reached_number(call(verdict="answered", reason="answered")) == "+15551230001"
    assert reached_number(call()) is None
    out = call(direction="outbound", verdict="ignored", reason="outbound", caller="101",
               callee="+15551230001", connected=True)
    assert reached_number(out) == "+15551230001"
    assert reached_number(replace(out, connected=False)) is None


def test_number_prefix() -> None:
    assert number_prefix("+15551230001", 7) == "+1555123"


ABUSE = CONFIG.replace("global_hour_cap = 9", 'global_hour_cap = 9\nburst_calls = 4\n'
                       'burst_pause_min = 30\ncountry_hour_caps = { "GB" = 2, "*" = 1 }\n'
                       'allowed_countries = ["US", "GB", "DE"]')


@pytest.mark.parametrize(("name", "kw", "snap", "reason"), [
    ("under the burst count", {}, PolicySnapshot(prefix_missed_window=3), None),
    ("burst completed by this call", {}, PolicySnapshot(prefix_missed_window=4), "burst"),
    ("prefix paused", {}, PolicySnapshot(prefix_paused_until=NOW + 1), "burst-paused"),
    ("pause over", {}, PolicySnapshot(prefix_paused_until=NOW), None),
    ("opt-out before burst", {}, PolicySnapshot(opted_out=True, prefix_missed_window=9),
     "opted-out"),
    ("GB under its cap", {"caller": "+447400123456"},
     PolicySnapshot(country="GB", texts_to_country_hour=1), None),
    ("GB at its cap", {"caller": "+447400123456"},
     PolicySnapshot(country="GB", texts_to_country_hour=2), "cap-country-hour"),
    ("DE at the '*' cap", {"caller": "+4915112345678"},
     PolicySnapshot(country="DE", texts_to_country_hour=1), "cap-country-hour"),
    ("premium never, caps or not", {"caller": "+449012345678"}, PolicySnapshot(),
     "premium-rate"),
    ("shared cost never", {"caller": "+34901123456"}, PolicySnapshot(), "shared-cost"),
    ("lab number has no country cap", {}, PolicySnapshot(country=None,
                                                         texts_to_country_hour=99), None),
])
def test_abuse_caps(name: str, kw: dict[str, object], snap: PolicySnapshot,
                    reason: str | None) -> None:
    config = parse_config(ABUSE, Path("/x/t.toml"), check_permissions=False)
    decision = decide(call(**kw), config, snap, NOW)
    assert decision.reason == reason, (name, decision)
    if reason == "burst":
        assert "4 missed calls from +1555123… in 10 min" in decision.detail


def test_number_country() -> None:
    from textback.outbound.policy import number_country

    assert number_country("+447400123456") == "GB" and number_country("+12125550123") == "US"
    assert number_country("+15551230001") is None and number_country("nonsense") is None
