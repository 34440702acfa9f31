"""``textback conversations [--number N] [--config PATH]``: each conversation with its
short code (what staff quote to reply), state, and its latest messages both ways.

Message text comes from customers: control, bidi and zero-width characters are shown
escaped (e.g. \\u202e), never raw. Times are the business's (the DID's [hours] timezone,
as in the texts staff get), not the host's.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from textback.cli._common import (
    config_or_none,
    number_or_none,
    store_for_reading,
    store_or_none,
    store_problem,
)
from textback.config import DEFAULT_PATH
from textback.report import Conversation, conversations, printable
from textback.store import StoreError, StoreUnavailable


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("conversations", help="conversations with their short code, "
                              "latest messages and state", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--number", metavar="N", help="only this customer number")
    p.add_argument("--limit", type=int, default=50, metavar="K",
                   help="at most K conversations, most recent first (default 50)")
    p.add_argument("--messages", type=int, default=3, metavar="M",
                   help="latest messages shown per conversation (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.set_defaults(func=run)


def _when(at: float, zone: tzinfo | None = None) -> str:
    """Wall-clock time in ``zone`` (the business's), host time when None."""
    if zone is None:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
    return dt.datetime.fromtimestamp(at, zone).strftime("%Y-%m-%d %H:%M %Z")


def render(items: list[Conversation], zones: Mapping[str, tzinfo] | None = None) -> str:
    """The listing; ``zones`` maps a DID to its business time zone."""
    if not items:
        return "no conversations"
    lines = []
    for c in items:
        zone = (zones or {}).get(c.did)
        state = c.state + (", opted out" if c.opted_out else "")
        lines.append(f"{c.code}  {c.number} -> {c.did}  {state}  "
                     f"(opened {_when(c.opened_at, zone)}, last {_when(c.last_activity_at, zone)})")
        for m in c.messages:
            arrow = "<" if m.direction == "in" else ">"
            lines.append(f"    {arrow} {_when(m.at, zone)} [{m.status}] {printable(m.body, 160)}")
    return "\n".join(lines)


async def _gather(db: Path, number: str | None, limit: int, last: int) -> list[Conversation]:
    async with store_for_reading(db) as store:
        return await conversations(store, number=number, limit=limit, last=last)


def run(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    number = None
    if args.number:
        number = number_or_none(args.number, config, "textback conversations: --number")
        if number is None:
            return 2
    if args.limit < 1 or args.messages < 0:
        print("textback conversations: --limit must be 1 or more, --messages 0 or more",
              file=sys.stderr)
        return 2
    db = store_or_none(config, "conversations")
    if db is None:
        return 1
    try:
        items = asyncio.run(_gather(db, number, args.limit, args.messages))
    except (StoreError, StoreUnavailable) as exc:
        return store_problem(exc, db, "conversations")
    if args.json:
        print(json.dumps([asdict(c) for c in items], indent=1, ensure_ascii=True))
    else:
        zones = {d.number: ZoneInfo(d.hours.timezone) for d in config.dids}
        print(render(items, zones))
    return 0
