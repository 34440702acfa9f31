"""``textback check-config [--config PATH] [--strict]``: is the config usable, and what will
texts cost?

Prints every error with its file line (exit 2), or OK followed by every DID's templates
rendered with sample data, each with its encoding and part count. A character that forces
UCS-2 (an emoji, a curly quote) is named, because it cuts a part from 160 to 70 characters
and can double what each text costs. Settings that are valid but probably not meant (no
[hours], so UTC; a zone like "EST" with no daylight saving; lab-only test_number_prefixes; a
template with no opt-out wording, which it names) are printed as ``warning: …`` lines. Exit 0
when the config is valid; with --strict, warnings are refused too (exit 2).

``[pbx] records`` (the PBX's CEL or CDR file that recovery after downtime reads) is opened
as the daemon would open it: one line ``records: OK …`` with its row count (the last 24 h,
the most recovery ever reads), or a warning
with the reader's own error (missing, unreadable by this user, locked, foreign columns),
because a source the daemon cannot read means calls missed while it was down stay untexted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none
from textback.config import DEFAULT_PATH, Config, DidConfig
from textback.errors import TextbackError
from textback.outbound.templates import (
    DEFAULT_TEMPLATES,
    REASON_WORDS,
    SAMPLE_VALUES,
    TEMPLATE_KINDS,
    has_optout_wording,
    render,
    segment_plan,
)
from textback.pbx.asterisk import cel
from textback.pbx.freeswitch import cdr


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check-config",
        help="validate the config file and show every template's encoding and cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.add_argument("--strict", action="store_true",
                   help="treat warnings (settings that are valid but probably not meant, "
                        "e.g. no [hours]) as errors: exit 2")
    p.set_defaults(func=run)


def sample_values(did: DidConfig) -> dict[str, str]:
    """The values a real text would carry; {reason} takes its longest wording (worst case)."""
    return {
        "business": did.business,
        "callback": did.callback,
        "booking_url": did.booking_url,
        "caller": SAMPLE_VALUES["caller"],
        "reason": max(REASON_WORDS.values(), key=len),
    }


def describe_template(did: DidConfig, kind: str) -> list[str]:
    """Lines describing one template of one DID: source, encoding, parts, UCS-2 culprits."""
    configured = did.templates.get(kind)
    text = configured or DEFAULT_TEMPLATES[kind]  # type: ignore[index]
    rendered = render(text, sample_values(did))
    origin = "configured" if configured else "default"
    plan = segment_plan(rendered)
    lines = []
    if plan is None:
        lines.append(f"  {kind} ({origin}): {len(rendered)} characters, encoding unknown "
                     "(the PDU codec is not installed)")
    else:
        parts = len(plan.parts)
        cost = f"{plan.encoding.upper().replace('GSM7', 'GSM-7').replace('UCS2', 'UCS-2')}, " \
               f"{parts} part{'s' if parts != 1 else ''}"
        lines.append(f"  {kind} ({origin}): {cost}, {len(rendered)} characters")
        if plan.offending:
            chars = list(dict.fromkeys(plan.offending))
            shown = " ".join(f"{c!r} (U+{ord(c[0]):04X})" for c in chars)
            verb, them = ("forces", "it") if len(chars) == 1 else ("force", "them")
            lines.append(f"    note: {shown} {verb} UCS-2: 70 characters per part instead of "
                         f"160, so the text can cost twice as much; replace {them} to stay "
                         "GSM-7")
        if parts > 1:
            lines.append(f"    note: {parts} parts are billed as {parts} texts")
    lines.append(f"    \u2502 {rendered}")
    return lines


# how far back check-config reads: the most a recovery after downtime ever reads
RECORDS_WINDOW_S = 86400.0


def read_records(config: Config) -> int | None:
    """How many rows of the last day ``[pbx] records`` holds, read exactly as recovery
    reads them (None: no source configured); raises the reader's ``CelError`` /
    ``CdrError``."""
    path = config.pbx.records
    if path is None:
        return None
    since = time.time() - RECORDS_WINDOW_S
    csv_file = path.suffix.lower() == ".csv"
    if config.pbx.type == "freeswitch":
        return len(cdr.read_cdr_csv(path, since=since) if csv_file
                   else cdr.read_cdr_sqlite(path, since=since))
    return len(cel.read_cel_csv(path, since=since) if csv_file
               else cel.read_cel_sqlite(path, since=since))


def records_line(config: Config) -> str | None:
    """The report's line on the recovery source (None when none is configured or it
    cannot be read: then :func:`records_warnings` says why)."""
    try:
        rows = read_records(config)
    except TextbackError:
        return None
    if rows is None:
        return None
    kind = "CDR" if config.pbx.type == "freeswitch" else "CEL"
    return (f"records: OK: {config.pbx.records} is readable {kind} in the shipped shape "
            f"({rows} row(s) from the last 24 h); calls that end while textback is down "
            "are recovered from it")


def records_warnings(config: Config) -> list[str]:
    """``[pbx] records`` that the daemon could not read: its reader's error, one line."""
    try:
        read_records(config)
    except TextbackError as exc:
        return [f"pbx.records: {exc}; until it is readable, calls that end while textback "
                "is down are never texted (docs/asterisk.md, docs/freeswitch.md)"]
    return []


def report(config: Config) -> list[str]:
    out = [f"OK: {config.source} is valid ({len(config.dids)} DID(s), "
           f"{len(config.modems)} modem(s), SIP {'on' if config.sip else 'off'})"]
    records = records_line(config)
    if records is not None:
        out.append(records)
    for did in config.dids:
        out.append(f"DID {did.number} \u2014 {did.business} (senders: "
                   f"{', '.join(did.senders)}; hours in {did.hours.timezone})")
        for kind in TEMPLATE_KINDS:
            out.extend(describe_template(did, kind))
    return out


def optout_wording_warnings(config: Config) -> list[str]:
    """Issue 14: every first text (and the follow-up and clarification texts) must tell the
    customer how to stop texts; one warning per template that does not, naming it."""
    out = []
    for did in config.dids:
        texts: list[tuple[str, str, str]] = []
        for kind in TEMPLATE_KINDS:
            configured = did.templates.get(kind)
            texts.append((f"templates.{kind}", "configured" if configured else "default",
                          configured or DEFAULT_TEMPLATES[kind]))
        if did.follow_ups:
            texts.append(("follow_up_text", "configured", did.follow_up_text))
        if did.possible_optout_text:
            texts.append(("possible_optout_text", "configured", did.possible_optout_text))
        for name, origin, text in texts:
            if not has_optout_wording(text):
                out.append(f"DID {did.number}: {name} ({origin}) has no opt-out wording; "
                           "add e.g. \"Reply STOP to opt out\" (every text must tell the "
                           "customer how to stop texts)")
    return out


# Each check returns warnings (the config is valid, but something deserves a look);
# ``--strict`` turns every one of them into an error.
WARNING_CHECKS: tuple[Callable[[Config], list[str]], ...] = (optout_wording_warnings,
                                                              records_warnings)


def collect_warnings(config: Config) -> list[str]:
    """The loaded config's own warnings (``file:line: key: message``), then every check's."""
    return ([w.format(str(config.source)) for w in config.warnings]
            + [w for check in WARNING_CHECKS for w in check(config)])


def run(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    found = collect_warnings(config)
    if args.strict and found:
        print("\n".join(f"warning: {w}" for w in found), file=sys.stderr)
        print(f"textback check-config: {len(found)} warning(s), refused because of "
              "--strict", file=sys.stderr)
        return 2
    lines = report(config)
    print("\n".join(lines[:1] + [f"warning: {w}" for w in found] + lines[1:]))
    return 0
