"""One gate for every outbound text: a kind, a destination, a snapshot and the config in,
``Allow`` or ``Refuse(reason)`` out. Pure: no store, no clock.

Why one gate. The missed-call text had its policy (``textback.outbound.policy``), but the HELP
answer, the STOP/START confirmations, staff forwards and relays, follow-ups, alerts and
``textback send`` went straight into the outbox: a HELP from a premium-rate number got an
answer, and 200 HELPs from one number got 200. Now ``Outbox.enqueue`` — the only way to add
an outbox row — asks this gate inside the insert's own transaction, so no producer can skip
it and no race between the check and the insert exists. A refusal is not an error: it is
stored as an outbox row in state ``skipped`` with its reason (``cancel_reason``) and logged.

What every kind must pass, in order (cheap and definitive first, caps last, as in the
missed-call policy):

1. the address: '+' and digits (E.164). A bare 3-6 digit number is a short code
   (``short-code``): never texted, whatever paid for it; anything else ``invalid-number``.
2. never the business itself: a DID, its callback number or a modem's SIM (``own-number``).
3. ``policy.deny`` (``denied``); for customer kinds also ``policy.allow`` (``not-allowed``).
4. the number plan (phonenumbers, offline): not valid, premium-rate, shared-cost are
   refused; lab numbers under ``policy.test_number_prefixes`` skip this step only. Customer
   kinds must also be in an allowed country (``policy.allowed_countries``, else the DID's);
   texts caused by a call (``textback``, ``followup``) also skip landlines when
   ``policy.skip_fixed_line``.
5. consent: no customer kind goes to an opted-out number, except ``optout-confirm``, which
   needs the number to be opted out and goes once per opt-out (``already-confirmed``).
6. caps: ``policy.kind_day_caps`` per kind and number per 24 h (``cap-kind-day``), the
   prefix cap for customer kinds (``cap-prefix-hour``) and the global hourly cap for
   everything (``cap-global-hour``).

Staff are destinations too, but not customers. Staff kinds (``staff-forward``,
``staff-answer``, ``burst-alert``, ``callback-unknown``) may only go to a number listed in
some DID's ``staff.sms`` (``not-staff``), pass steps 1-4 without the allow list and the
country rule (a staff mobile may be abroad; the operator wrote it into the config) and the
global cap, but not the customer opt-out: a staff phone's STOP is a staff text, never an
opt-out (``textback.inbound``), and staff must hear about replies and floods.

The missed-call text (``textback``) is decided by ``textback.outbound.policy.decide`` first
(reached, cooldown, bursts, country caps...); the gate checks it again for what applies to
every kind, with the same counts, so the two never disagree except where only the gate knows
better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from phonenumbers import PhoneNumberType

from textback.config import Config
from textback.numbers import number_plan
from textback.outbound.settings import TEXT_KINDS, PolicyConfig

Audience = Literal["customer", "staff"]


@dataclass(frozen=True, slots=True)
class KindRule:
    """How a kind of text is gated: who receives it, and whether a call caused it."""

    audience: Audience
    from_call: bool = False  # the fixed-line rule applies (a text caused by a missed call)


KINDS: Mapping[str, KindRule] = {
    "textback": KindRule("customer", from_call=True),
    "followup": KindRule("customer", from_call=True),
    "help": KindRule("customer"),
    "optout-confirm": KindRule("customer"),
    "optin-confirm": KindRule("customer"),
    "relay": KindRule("customer"),
    "manual": KindRule("customer"),
    "possible-optout-clarify": KindRule("customer"),
    "staff-forward": KindRule("staff"),
    "staff-answer": KindRule("staff"),
    "burst-alert": KindRule("staff"),
    "callback-unknown": KindRule("staff"),
}
assert set(KINDS) == set(TEXT_KINDS)

REFUSAL_REASONS = (
    "short-code", "invalid-number", "own-number", "denied", "not-allowed", "not-staff",
    "premium-rate", "shared-cost", "fixed-line", "country-not-allowed", "opted-out",
    "not-opted-out", "already-confirmed", "cap-kind-day", "cap-prefix-hour",
    "cap-global-hour",
)


def base_kind(kind: str) -> str:
    """The gate's kind of an outbox kind: ``followup-2`` → ``followup``,
    ``burst-alert:+1555…`` → ``burst-alert``; ValueError for a kind the gate does not know
    (a programming error: a new producer must be given a rule here)."""
    base = kind.split(":", 1)[0]
    if base.startswith("followup-"):
        base = "followup"
    if base not in KINDS:
        raise ValueError(f"unknown text kind {kind!r}: add it to textback.outbound.gate.KINDS")
    return base


@dataclass(frozen=True, slots=True)
class GateConfig:
    """What the gate needs from the config, as plain data (``from_config``)."""

    policy: PolicyConfig
    own_numbers: frozenset[str] = frozenset()
    staff_numbers: frozenset[str] = frozenset()
    did_regions: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> GateConfig:
        own = {d.number for d in config.dids} | {d.callback for d in config.dids if d.callback}
        own |= {m.number for m in config.modems if m.number}
        staff = {n for d in config.dids for n in d.staff.sms}
        return cls(config.policy, frozenset(own), frozenset(staff),
                   {d.number: d.region for d in config.dids})

    def allowed_countries(self, did: str | None) -> tuple[str, ...]:
        if self.policy.allowed_countries:
            return self.policy.allowed_countries
        if did is not None and did in self.did_regions:
            region = self.did_regions[did]
            return (region,) if region else ()
        return tuple(sorted({r for r in self.did_regions.values() if r}))


@dataclass(frozen=True, slots=True)
class GateSnapshot:
    """What the store knows at the moment of the insert (counts of rows that went or will
    go: queued, sending, sent, delivered, unconfirmed, failed)."""

    opted_out: bool = False
    confirms_since_optout: int = 0  # optout-confirm rows since the latest opt-out
    kind_texts_day: int = 0  # this kind to this number, last 24 h
    texts_to_prefix_hour: int = 0
    texts_global_hour: int = 0


@dataclass(frozen=True, slots=True)
class Allow:
    """The text may be queued."""

    allowed: Literal[True] = True


@dataclass(frozen=True, slots=True)
class Refuse:
    """The text must not go: ``reason`` (one of REFUSAL_REASONS) and a line for people."""

    reason: str
    detail: str = ""
    allowed: Literal[False] = False


GateDecision = Allow | Refuse


def _plain_digits(number: str) -> bool:
    return number.isascii() and number.isdigit()


def check_destination(kind: str, number: str, did: str | None,
                      config: GateConfig) -> Refuse | None:
    """Steps 1-4 (everything about the number itself); None when it may be texted."""
    rule = KINDS[base_kind(kind)]
    policy = config.policy
    if not number.startswith("+"):
        if _plain_digits(number) and 3 <= len(number) <= 6:
            return Refuse("short-code", f"{number} is a short code")
        return Refuse("invalid-number", f"{number!r} is not an international number")
    if not _plain_digits(number[1:]):
        return Refuse("invalid-number", f"{number!r} is not '+' and digits")
    if number in config.own_numbers:
        return Refuse("own-number", f"{number} is one of the business's own numbers")
    if any(number.startswith(p) for p in policy.deny):
        return Refuse("denied", f"{number} matches policy.deny")
    if rule.audience == "staff":
        if number not in config.staff_numbers:
            return Refuse("not-staff", f"{number} is not in any [did.staff] sms list")
    elif policy.allow and not any(number.startswith(p) for p in policy.allow):
        return Refuse("not-allowed", f"{number} is not in policy.allow")
    if any(number.startswith(p) for p in policy.test_number_prefixes):
        return None
    facts = number_plan(number)
    if not facts.parsed:
        return Refuse("invalid-number", f"{number} cannot be parsed")
    if not facts.valid:
        return Refuse("invalid-number", f"{number} is not a valid number")
    plan = facts.kind
    if plan == PhoneNumberType.PREMIUM_RATE:
        return Refuse("premium-rate", number)
    if plan == PhoneNumberType.SHARED_COST:
        return Refuse("shared-cost", number)
    if rule.audience == "staff":
        return None
    if rule.from_call and plan == PhoneNumberType.FIXED_LINE and policy.skip_fixed_line:
        return Refuse("fixed-line", f"{number} is a landline in its number plan")
    region = facts.region
    allowed = config.allowed_countries(did)
    if region not in allowed:
        return Refuse("country-not-allowed",
                      f"{number} is in {region}; allowed: {', '.join(allowed) or 'none'}")
    return None


def decide(kind: str, number: str, did: str | None, snapshot: GateSnapshot,
           config: GateConfig) -> GateDecision:
    """May a text of ``kind`` go to ``number`` (from ``did``) now? Every outbound text is
    asked this question, by ``Outbox.enqueue``, before its row exists."""
    base = base_kind(kind)
    rule = KINDS[base]
    policy = config.policy
    bad = check_destination(kind, number, did, config)
    if bad is not None:
        return bad
    if rule.audience == "customer":
        if base == "optout-confirm":
            if not snapshot.opted_out:
                return Refuse("not-opted-out", f"{number} has not opted out")
            if snapshot.confirms_since_optout:
                return Refuse("already-confirmed",
                              f"{number} already got its opt-out confirmation")
        elif snapshot.opted_out:
            return Refuse("opted-out", f"{number} has opted out of texts")
    cap = policy.kind_day_caps.get(base, 0)
    if cap and snapshot.kind_texts_day >= cap:
        return Refuse("cap-kind-day", f"{snapshot.kind_texts_day} {base} texts to {number} "
                      f"in 24 h (cap {cap})")
    if rule.audience == "customer" and snapshot.texts_to_prefix_hour >= policy.prefix_hour_cap:
        return Refuse("cap-prefix-hour", f"{snapshot.texts_to_prefix_hour} texts to the "
                      f"prefix of {number} in 1 h (cap {policy.prefix_hour_cap})")
    if snapshot.texts_global_hour >= policy.global_hour_cap:
        return Refuse("cap-global-hour", f"{snapshot.texts_global_hour} texts in 1 h "
                      f"(cap {policy.global_hour_cap})")
    return Allow()
