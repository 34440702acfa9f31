"""Should this call be texted? Pure functions: an outcome, the config and a snapshot in,
a decision with its reason out.

The policy never reads the store or a clock: the daemon passes ``now`` and a
:class:`PolicySnapshot` of what the store knows about the number (opt-out, recent texts,
counts for the anti-pumping caps). That keeps every rule table-testable, and a skip always
carries a reason code that is stored with the call, so ``textback status`` and the report
can say why nobody was texted.

Order of the checks: first what makes a call not textable at all (verdict, direction,
withheld, unknown DID, reason), then the number itself (validity, type, country, lists),
then consent (opt-out), then rate rules (reached, burst pause, cooldown, caps). Cheap and
definitive first; the caps come last so a call that was never eligible does not count as
capped.

Abuse caps (issue 6). Premium-rate and shared-cost numbers are never texted (number plan).
A burst — ``burst_calls`` missed calls from one prefix within ``burst_window_s`` — is how
a spoofed flood or a pumping attack looks from the PBX: the call that completes it is
skipped as ``burst``; the store turns that skip into a pause of the prefix
(``burst_pause_s``) with a row for the staff alert, and later calls from the prefix skip as
``burst-paused`` until it ends. ``country_hour_caps`` bound texts per destination country
per hour, because international SMS is where the money goes in an SMS-pumping fraud.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from phonenumbers import PhoneNumberType

from textback.config import Config, DidConfig
from textback.numbers import number_plan
from textback.outbound.settings import PolicyConfig
from textback.pbx.outcome import CallOutcome

SkipReason = Literal[
    "not-missed", "not-inbound", "withheld", "no-caller", "unknown-did", "reason-not-texted",
    "short-abandon", "invalid-number", "premium-rate", "shared-cost", "fixed-line",
    "country-not-allowed", "denied", "not-allowed", "opted-out", "reached", "cooldown",
    "stale", "cap-caller-day", "cap-prefix-hour", "cap-global-hour", "undeliverable",
    "burst", "burst-paused", "cap-country-hour",
]

SKIP_REASONS: tuple[str, ...] = SkipReason.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """What the store knows about the number at decision time (plain data).

    Counts include texts queued or in flight (not cancelled/skipped), so a burst of calls
    during the send delay is capped too. ``reached_at`` is the latest time a person spoke
    with the number (an answered inbound call from it, or a connected outbound call to it).
    """

    opted_out: bool = False
    last_text_at: float | None = None  # to this number from this DID
    texts_to_number_day: int = 0  # last 24 h, any DID
    texts_to_prefix_hour: int = 0  # last hour, numbers sharing the prefix
    texts_global_hour: int = 0  # last hour, everything
    reached_at: float | None = None
    failed_deliveries: int = 0  # permanent delivery failures to this number
    # abuse caps
    prefix_missed_window: int = 0  # missed calls from the prefix in the burst window (incl.
    #                                this one); 0 while the prefix is paused (not counted)
    prefix_paused_until: float | None = None  # an active burst pause covering this number
    country: str | None = None  # the number's region (ISO alpha-2), None if not in a plan
    texts_to_country_hour: int = 0  # last hour, to numbers of ``country``


@dataclass(frozen=True, slots=True)
class Decision:
    """``text`` with the DID and the earliest send time, or ``skip`` with its reason."""

    action: Literal["text", "skip"]
    reason: str | None = None  # a SkipReason when skipping
    did: DidConfig | None = None
    not_before: float | None = None
    detail: str = ""

    @property
    def texts(self) -> bool:
        return self.action == "text"


def _skip(reason: SkipReason, detail: str = "", did: DidConfig | None = None) -> Decision:
    return Decision("skip", reason, did, None, detail)


def number_prefix(number: str, digits: int) -> str:
    """The prefix used for the per-prefix cap: '+' and the first ``digits`` digits."""
    return number[: digits + 1] if number.startswith("+") else number[:digits]


def number_country(number: str) -> str | None:
    """The region (ISO alpha-2) a number belongs to, None when it is in no plan (e.g. the
    fictional +1555 range) or cannot be parsed. The store and the policy both use this, so
    the per-country count and the cap it is compared with agree."""
    return number_plan(number).region


def is_test_number(number: str, policy: PolicyConfig) -> bool:
    return any(number.startswith(p) for p in policy.test_number_prefixes)


def check_number(number: str, did: DidConfig, policy: PolicyConfig) -> Decision | None:
    """Number-plan checks (offline, phonenumbers); a skip Decision, or None when fine.

    Lab numbers matching ``policy.test_number_prefixes`` (e.g. the fictional +1555 range,
    which phonenumbers calls invalid) skip the plan checks but none of the others.
    """
    if any(number.startswith(p) for p in policy.deny):
        return _skip("denied", f"{number} matches policy.deny", did)
    if policy.allow and not any(number.startswith(p) for p in policy.allow):
        return _skip("not-allowed", f"{number} is not in policy.allow", did)
    if is_test_number(number, policy):
        return None
    plan = number_plan(number)
    if not plan.parsed:
        return _skip("invalid-number", f"{number} cannot be parsed", did)
    if not plan.valid:
        return _skip("invalid-number", f"{number} is not a valid number", did)
    kind = plan.kind
    if kind == PhoneNumberType.PREMIUM_RATE:
        return _skip("premium-rate", number, did)
    if kind == PhoneNumberType.SHARED_COST:
        return _skip("shared-cost", number, did)
    if kind == PhoneNumberType.FIXED_LINE and policy.skip_fixed_line:
        return _skip("fixed-line", f"{number} is a landline in its number plan", did)
    region = plan.region
    allowed = policy.allowed_countries or ((did.region,) if did.region else ())
    if region not in allowed:
        return _skip("country-not-allowed",
                     f"{number} is in {region}; allowed: {', '.join(allowed) or 'none'}", did)
    return None


def decide(outcome: CallOutcome, config: Config, snapshot: PolicySnapshot,
           now: float) -> Decision:
    """Text this caller or not, and why. ``now`` is when the decision is taken."""
    policy = config.policy
    if outcome.direction != "inbound":
        return _skip("not-inbound", outcome.direction)
    if outcome.verdict != "missed":
        return _skip("not-missed", outcome.reason)
    if outcome.withheld:
        return _skip("withheld")
    caller = outcome.caller
    if not caller:
        return _skip("no-caller")
    did = config.did(outcome.did)
    if did is None:
        return _skip("unknown-did", f"DID {outcome.did} has no [[did]] section")
    if outcome.reason not in did.text_reasons:
        return _skip("reason-not-texted", outcome.reason, did)
    if outcome.reason == "abandon" and outcome.ring_s < policy.short_abandon_s:
        return _skip("short-abandon",
                     f"rang {outcome.ring_s:.1f} s < {policy.short_abandon_s:g} s", did)
    if not caller.startswith("+"):
        return _skip("invalid-number", f"{caller} is not an international number", did)
    if policy.stale_after_s and outcome.ended_at is not None and \
            now - outcome.ended_at > policy.stale_after_s:
        return _skip("stale", f"the call ended {(now - outcome.ended_at) / 60:.0f} min ago "
                     f"(> {policy.stale_after_s / 60:g} min)", did)
    bad_number = check_number(caller, did, policy)
    if bad_number is not None:
        return bad_number
    if snapshot.opted_out:
        return _skip("opted-out", caller, did)
    call_end = outcome.ended_at if outcome.ended_at is not None else now
    if snapshot.reached_at is not None and snapshot.reached_at >= call_end:
        return _skip("reached", "a person spoke with the caller after this call", did)
    if policy.skip_after_failed_deliveries and \
            snapshot.failed_deliveries >= policy.skip_after_failed_deliveries:
        return _skip("undeliverable",
                     f"{snapshot.failed_deliveries} earlier texts to {caller} failed", did)
    prefix = number_prefix(caller, policy.prefix_digits)
    if snapshot.prefix_paused_until is not None and snapshot.prefix_paused_until > now:
        return _skip("burst-paused",
                     f"texts to {prefix}… paused for {snapshot.prefix_paused_until - now:.0f} s "
                     "more after a burst of missed calls", did)
    if policy.burst_calls and snapshot.prefix_missed_window >= policy.burst_calls:
        return _skip("burst",
                     f"{snapshot.prefix_missed_window} missed calls from {prefix}… in "
                     f"{policy.burst_window_s / 60:g} min: texts to {prefix}… paused for "
                     f"{policy.burst_pause_s / 60:g} min, staff alert recorded", did)
    if snapshot.last_text_at is not None and now - snapshot.last_text_at < policy.cooldown_s:
        return _skip("cooldown", f"texted {now - snapshot.last_text_at:.0f} s ago", did)
    if snapshot.texts_to_number_day >= policy.caller_day_cap:
        return _skip("cap-caller-day", f"{snapshot.texts_to_number_day} texts in 24 h", did)
    if snapshot.texts_to_prefix_hour >= policy.prefix_hour_cap:
        return _skip("cap-prefix-hour",
                     f"{snapshot.texts_to_prefix_hour} texts to "
                     f"{prefix}… in 1 h", did)
    country_cap = policy.country_hour_cap(snapshot.country) if snapshot.country else None
    if country_cap is not None and snapshot.texts_to_country_hour >= country_cap:
        return _skip("cap-country-hour",
                     f"{snapshot.texts_to_country_hour} texts to {snapshot.country} numbers "
                     f"in 1 h (cap {country_cap})", did)
    if snapshot.texts_global_hour >= policy.global_hour_cap:
        return _skip("cap-global-hour", f"{snapshot.texts_global_hour} texts in 1 h", did)
    return Decision("text", None, did, now + policy.send_delay_s)


def reached_number(outcome: CallOutcome) -> str | None:
    """The external number a person just spoke with, whose pending texts must be cancelled.

    An answered inbound call reached its caller; a connected outbound call (staff calling
    back) reached its callee. None otherwise.
    """
    if outcome.direction == "inbound" and outcome.verdict == "answered" and outcome.caller:
        return outcome.caller
    if outcome.direction == "outbound" and outcome.connected and outcome.callee:
        return outcome.callee
    return None
