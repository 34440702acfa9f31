"""``textback report [--since DATE] [--did DID] [--format table|csv|json] [--config PATH]``:
per DID and missed-call reason, what was texted, skipped (and why), delivered, replied, opted
out, how many callers were later reached (answered call or connected callback), how many
missed calls were recovered from the PBX's own records after textback was down, with
the median time from call end to text and from text to first reply.

Outcomes count for a missed call when they happen within 7 days of it. Reads the store
while the daemon runs (WAL: never blocks it).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any

from textback.cli._common import (
    config_or_none,
    number_or_none,
    store_for_reading,
    store_or_none,
    store_problem,
)
from textback.config import DEFAULT_PATH
from textback.report import (
    ATTRIBUTION_S,
    OUTCOMES,
    Dashboard,
    ReportRow,
    dashboard_from,
    group,
    parse_since,
    per_call,
)
from textback.store import StoreError, StoreUnavailable

COLUMNS = ("did", "reason", "missed", "texted", "skipped", "delivered", "replied",
           "opted_out", "called_back_answered", "recovered", "booked", "median_text_s",
           "median_reply_s")
HEADS = ("DID", "REASON", "MISSED", "TEXTED", "SKIPPED", "DELIVERED", "REPLIED", "OPTED OUT",
         "ANSWERED", "RECOVERED", "BOOKED", "MED TEXT S", "MED REPLY S")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="texted, skipped, delivered, replied, opted "
                              "out, called back - per DID and reason",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--since", metavar="DATE",
                   help="from this date (2026-03-01, midnight in [hours] timezone) or "
                   "date and time (2026-03-01T09:00); default: everything")
    p.add_argument("--did", metavar="DID", help="only this DID")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.set_defaults(func=run)


async def _gather(db: Path, since: float | None, did: str | None,
                  timezone: str) -> tuple[list[ReportRow], Dashboard]:
    async with store_for_reading(db) as store:
        rows = await per_call(store, since=since, did=did)
    return group(rows), dashboard_from(rows, timezone)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def render_table(rows: list[ReportRow]) -> str:
    if not rows:
        return "no missed calls in this period"
    body = [[_cell(r.as_dict()[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(HEADS)]
    lines = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(HEADS, widths, strict=True)))]
    for b in body:
        lines.append("  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(b, widths, strict=True))))
    marked = [r for r in rows if r.outcomes and r.reason == "all"]
    if marked:
        lines.append("")
        lines.append("outcomes (marked by staff in the web inbox):")
        for r in marked:
            lines.append(f"  {r.did}: " + ", ".join(f"{k} {r.outcomes.get(k, 0)}"
                                                   for k in OUTCOMES))
    skipped = [r for r in rows if r.skipped and r.reason != "all"]
    if skipped:
        lines.append("")
        lines.append("skipped by reason:")
        for r in skipped:
            lines.append(f"  {r.did} {r.reason}: " + ", ".join(
                f"{k} {v}" for k, v in sorted(r.skipped.items())))
    return "\n".join(lines)


def write_csv(rows: list[ReportRow], out: Any) -> None:
    reasons = sorted({k for r in rows for k in r.skipped})
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *(f"skipped:{k}" for k in reasons),
                     *(f"outcome:{k}" for k in OUTCOMES)])
    for r in rows:
        d = r.as_dict()
        writer.writerow([("" if d[c] is None else d[c]) for c in COLUMNS]
                        + [r.skipped.get(k, 0) for k in reasons]
                        + [r.outcomes.get(k, 0) for k in OUTCOMES])


def run(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    since = None
    if args.since:
        try:
            since = parse_since(args.since, config.hours.timezone)
        except ValueError as exc:
            print(f"textback report: --since: {exc}", file=sys.stderr)
            return 2
    did = None
    if args.did:
        did = number_or_none(args.did, config, "textback report: --did")
        if did is None:
            return 2
    db = store_or_none(config, "report")
    if db is None:
        return 1
    try:
        rows, board = asyncio.run(_gather(db, since, did, config.hours.timezone))
    except (StoreError, StoreUnavailable) as exc:
        return store_problem(exc, db, "report")
    if args.format == "json":
        print(json.dumps({"since": since, "did": did, "window_s": ATTRIBUTION_S,
                          "rows": [r.as_dict() for r in rows],
                          "dashboard": board.as_dict()}, indent=1))
    elif args.format == "csv":
        write_csv(rows, sys.stdout)
    else:
        print(render_table(rows))
    return 0
