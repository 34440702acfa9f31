"""The text a missed caller receives: pick the DID's template for the moment, fill it safely.

Templates use ``{name}`` fields from a fixed set. Nothing else of ``str.format`` is
allowed (no ``{business.__class__}``, no format specs): a template is admin-written, but a
value such as the caller's number comes from the outside world, so every value is stripped
of control, format and line-separator characters before it is inserted, and the filled text
is never re-parsed. ``segment_plan`` asks the PDU codec how the text will be encoded (GSM-7
or UCS-2) and how many parts it costs; it is imported lazily so this module does not depend
on the modem stack being importable.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from textback.errors import TextbackError

if TYPE_CHECKING:
    from textback.modem.pdu import SegmentPlan

FIELDS = frozenset({"business", "callback", "booking_url", "reason", "caller"})

TemplateKind = Literal["business_hours", "after_hours", "holiday", "voicemail_left"]
TEMPLATE_KINDS: tuple[TemplateKind, ...] = (
    "business_hours", "after_hours", "holiday", "voicemail_left",
)

# Fits one GSM-7 part (160 characters) with a business name of up to ~60 characters and a
# 12-digit callback number; check-config proves it for the configured values.
DEFAULT_TEMPLATES: Mapping[TemplateKind, str] = {
    "business_hours": "Sorry we missed your call - {business}. Reply here or call us on "
                      "{callback}. Reply STOP to opt out",
    "after_hours": "Thanks for calling {business}. We're closed now and will get back to you "
                   "when we open. Reply here. Reply STOP to opt out",
    "holiday": "Thanks for calling {business}. We're closed for the holiday and will get back "
               "to you soon. Reply STOP to opt out",
    "voicemail_left": "Thanks for your message, {business} will call you back soon. "
                      "Reply STOP to opt out",
}

# {reason}: what happened to the call, in words a caller understands.
REASON_WORDS: Mapping[str, str] = {
    "noanswer": "we couldn't answer",
    "busy": "our line was busy",
    "unavailable": "we couldn't take the call",
    "abandon": "we couldn't answer in time",
    "queue-abandon": "you were waiting in our queue",
    "queue-timeout": "our team was busy",
    "ivr-abandon": "the call ended in our menu",
    "voicemail": "you reached our voicemail",
}

SAMPLE_VALUES: Mapping[str, str] = {
    "caller": "+15551230001",
    "reason": REASON_WORDS["noanswer"],
}


class TemplateError(TextbackError, ValueError):
    """A template that cannot be rendered; the message names the offending field."""


_STRIP_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def clean_value(value: str, max_len: int = 200) -> str:
    """``value`` without control/format/separator characters, whitespace runs collapsed.

    CR, LF, Ctrl-Z (the AT+CMGS terminator), ESC and bidi overrides all go: a value can
    never add a line, end a PDU early or reorder what the reader sees.
    """
    kept = "".join(
        " " if ch in "\t\r\n\x0b\x0c" else ch
        for ch in value
        if ch in "\t\r\n\x0b\x0c" or unicodedata.category(ch) not in _STRIP_CATEGORIES
    )
    return " ".join(kept.split())[:max_len]


def template_fields(template: str) -> list[str]:
    """Every field name in ``template``; raises TemplateError on broken syntax."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"broken braces ({exc}); write {{{{ and }}}} for literal braces") \
            from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + \
                (f":{spec}" if spec else "") + "}"
            raise TemplateError(f"field {shown} is not allowed: write just {{name}}")
        names.append(name)
    return names


def check_template(template: str) -> list[str]:
    """Problems with ``template`` (unknown fields, broken braces); empty when fine."""
    try:
        names = template_fields(template)
    except TemplateError as exc:
        return [str(exc)]
    valid = ", ".join("{" + p + "}" for p in sorted(FIELDS))
    return [f"unknown field {{{n}}} (valid: {valid})" for n in names
            if n not in FIELDS]


def render(template: str, values: Mapping[str, str | None]) -> str:
    """Fill ``template``; every value is cleaned first, a missing one renders empty.

    The result is assembled piece by piece from the parsed template, so text inside a
    value (even "{business}") is inserted literally and never interpreted.
    """
    problems = check_template(template)
    if problems:
        raise TemplateError("; ".join(problems))
    out: list[str] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(clean_value(values.get(name) or ""))
    return "".join(out).strip()


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    """Which template was used and why (stored with the message, shown by check-config)."""

    kind: TemplateKind
    text: str
    is_default: bool


def choose(
    configured: Mapping[str, str | None], period: str, voicemail_left: bool
) -> TemplateChoice:
    """The DID's template for this call.

    voicemail_left (when configured) wins; a holiday falls back to after_hours, after_hours
    to business_hours; anything not configured uses the built-in default of its kind.
    """
    order: list[TemplateKind] = []
    if voicemail_left:
        order.append("voicemail_left")
    if period == "holiday":
        order += ["holiday", "after_hours"]
    elif period == "after_hours":
        order.append("after_hours")
    order.append("business_hours")
    for kind in order:
        text = configured.get(kind)
        if text:
            return TemplateChoice(kind, text, False)
    first = order[0]
    return TemplateChoice(first, DEFAULT_TEMPLATES[first], True)


def segment_plan(text: str) -> SegmentPlan | None:
    """The PDU codec's encoding and part plan for ``text``; None if the codec is absent."""
    try:
        from textback.modem.pdu import plan_segments
    except ImportError:
        return None
    return plan_segments(text)


# Opt-out wording (issue 14): an instruction to reply a per-se / carrier word ("Reply STOP
# to opt out", "Text END to stop", "Responde ALTO"), or naming the way out ("to opt out",
# "unsubscribe"). Matched case- and accent-insensitively on the template text.
_OPTOUT_WORDING = re.compile(
    r"\b(?:reply|text|txt|send|respond(?:\s+with)?|responde|repondez|envoyez)\s+[\"'“]?"
    r"(?:stop|end|quit|cancel|unsubscribe|stopall|optout|arret|alto)\b"
    r"|\bopt[\s-]?out\b|\bunsubscribe\b"
)


def has_optout_wording(template: str) -> bool:
    """True when ``template`` tells the customer how to stop texts (see _OPTOUT_WORDING)."""
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", template.casefold())
                     if not unicodedata.combining(ch))
    return _OPTOUT_WORDING.search(folded) is not None

