"""``textback optout add|remove|list [NUMBER] [--config PATH]``: the do-not-text list.

``add`` puts a number on the list (source "cli") and cancels every text queued to it and
every follow-up scheduled for it, at once and on every DID. ``remove`` takes it off (for a
mistake; a customer opts back in by texting START). ``list`` shows each number with since
when, the source (keyword, cli, staff) and the message that caused it; with a NUMBER, that
number's whole opt-out / opt-in history.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none, number_or_none
from textback.config import DEFAULT_PATH, WebhookConfig
from textback.inbound.optout import set_opt_out
from textback.outbound.followups import cancel_follow_ups
from textback.report import OptOut, opt_history, opted_out, printable


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("optout", help="add, remove or list numbers on the "
                              "do-not-text list", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument("number", nargs="?", metavar="NUMBER",
                   help="E.164 (+15551230001) or national in [trunks] default_region; "
                   "required for add and remove")
    p.add_argument("--note", help="why (stored with the history row)")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.set_defaults(func=run)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def render(rows: list[OptOut], history: bool) -> str:
    if not rows:
        return "no numbers opted out" if not history else "no opt-out history"
    lines = []
    for r in rows:
        what = f"{r.action:<7} " if history else ""
        cause = f' "{printable(r.message, 120)}"' if r.message is not None else ""
        note = f" ({printable(r.note, 120)})" if r.note else ""
        lines.append(f"{what}{r.number}  since {_when(r.at)}  {r.source}{cause}{note}")
    return "\n".join(lines)


async def _change(db: Path, number: str, add: bool, note: str | None,
                  now: float, hooks: tuple[WebhookConfig, ...] = ()) -> tuple[bool, int, int]:
    """(changed, texts cancelled, follow-ups cancelled). The optout/optin webhook event is
    queued in the store; the running daemon's delivery loop sends it."""
    from textback import webhooks
    from textback.outbound.outbox import Outbox
    from textback.store import Store

    store = await Store.open(db)
    try:
        current = await opted_out(store, number)
        if bool(current) == add:
            return False, 0, 0
        await set_opt_out(store, number, add, now, "cli", note=note)
        await webhooks.opt_changed(webhooks.Webhooks(hooks, clock=time.time, store=store),
                                   number, add, did=None, message_id=None, source="cli",
                                   at=now)
        if not add:
            return True, 0, 0
        texts = await Outbox(store).cancel_for_number(number, "opted-out", now)
        follow_ups = await cancel_follow_ups(store, number, "opted-out", now)
        return True, texts, follow_ups
    finally:
        await store.close()


async def _list(db: Path, number: str | None) -> list[OptOut]:
    from textback.store import Store

    store = await Store.open(db)
    try:
        return await (opt_history(store, number) if number else opted_out(store))
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    number = None
    if args.number is not None:
        number = number_or_none(args.number, config, "textback optout")
        if number is None:
            return 2
    if args.action != "list" and number is None:
        print(f"textback optout {args.action}: NUMBER is required", file=sys.stderr)
        return 2
    db = config.store.path
    if args.action == "list" and not db.exists():
        print(f"textback optout: no store at {db} yet (has `textback run` started?)",
              file=sys.stderr)
        return 1
    if args.action == "list":
        print(render(asyncio.run(_list(db, number)), history=number is not None))
        return 0
    assert number is not None
    add = args.action == "add"
    changed, texts, follow_ups = asyncio.run(_change(db, number, add, args.note, time.time(),
                                                     config.webhooks))
    if not changed:
        print(f"{number} is {'already' if add else 'not'} on the do-not-text list")
    elif add:
        print(f"{number} opted out: {texts} queued text(s) and {follow_ups} follow-up(s) "
              "cancelled; nothing more will be texted to it")
    else:
        print(f"{number} removed from the do-not-text list")
    return 0
