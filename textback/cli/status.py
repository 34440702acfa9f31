"""``textback status [--config PATH] [--json]``: is it working, today, in numbers.

Reads the store (calls, skips by reason, texts, outbox depth) and the status file the
running daemon refreshes every few seconds (modem health, PBX link). Works while the
daemon runs: the store is in WAL mode, so reading never blocks it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none, store_or_none
from textback.config import DEFAULT_PATH
from textback.daemon import STATUS_FILE


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="today's calls, texts, skips; modem and PBX health",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.add_argument("--since", type=float, metavar="EPOCH",
                   help="count from this time (default: local midnight today)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=run)


def _midnight() -> float:
    t = time.localtime()
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


async def gather(db_path: Path, since: float) -> dict[str, Any]:
    from textback.store import Store

    store = await Store.open(db_path)
    try:
        calls = await store.fetchall(
            "SELECT direction, verdict, count(*) AS n FROM calls WHERE decided_at >= ? "
            "GROUP BY direction, verdict", (since,))
        skips = await store.fetchall(
            "SELECT skip_reason, count(*) AS n FROM calls WHERE decided_at >= ? AND "
            "skip_reason IS NOT NULL GROUP BY skip_reason", (since,))
        texts = await store.fetchall(
            "SELECT status, count(*) AS n FROM messages WHERE direction = 'out' AND "
            "created_at >= ? GROUP BY status", (since,))
        replies = await store.fetchone(
            "SELECT count(*) AS n FROM messages WHERE direction = 'in' AND created_at >= ?",
            (since,))
        outbox = await store.fetchall("SELECT state, count(*) AS n FROM outbox GROUP BY state")
        # staff e-mail waiting for the MTA (any age) and given up (today): an MTA that is
        # down shows here rather than only in the journal
        mail = await store.fetchall(
            "SELECT state, count(*) AS n FROM staff_mail WHERE state = 'queued' OR "
            "(state != 'queued' AND created_at >= ?) GROUP BY state", (since,))
    finally:
        await store.close()
    by_verdict: dict[str, int] = {}
    for r in calls:
        key = r["verdict"] if r["direction"] == "inbound" else r["direction"]
        by_verdict[key] = by_verdict.get(key, 0) + r["n"]
    return {
        "since": since,
        "calls": by_verdict,
        "skipped": {r["skip_reason"]: r["n"] for r in skips},
        "texts": {r["status"]: r["n"] for r in texts},
        "replies": replies["n"] if replies else 0,
        "outbox": {r["state"]: r["n"] for r in outbox},
        "staff_email": {r["state"]: r["n"] for r in mail},
    }


def run(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    db_path = store_or_none(config, "status")
    if db_path is None:
        return 1
    report = asyncio.run(gather(db_path, args.since if args.since is not None else _midnight()))
    live_path = db_path.parent / STATUS_FILE
    live: dict[str, Any] | None = None
    if live_path.exists():
        live = json.loads(live_path.read_text())
        live["age_s"] = round(time.time() - float(live.get("at", 0)), 1)
    report["daemon"] = live
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    calls = report["calls"]
    print(f"since {time.strftime('%Y-%m-%d %H:%M', time.localtime(report['since']))}:")
    print(f"  inbound calls: {calls.get('missed', 0) + calls.get('answered', 0)} "
          f"(missed {calls.get('missed', 0)}, answered {calls.get('answered', 0)}); "
          f"internal {calls.get('internal', 0)}, outbound {calls.get('outbound', 0)}")
    texts = report["texts"]
    print(f"  texts sent: {sum(texts.values())} "
          + (f"({', '.join(f'{k} {v}' for k, v in sorted(texts.items()))})" if texts else ""))
    if report["skipped"]:
        print("  not texted: " + ", ".join(f"{k} {v}" for k, v in
                                          sorted(report["skipped"].items())))
    print(f"  replies: {report['replies']}")
    print("  outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(report["outbox"].items()))
                          or "empty"))
    mail = report["staff_email"]
    if mail:
        waiting = (f" - {mail['queued']} waiting for the MTA ([email] host/port)"
                   if mail.get("queued") else "")
        print("  staff e-mail: " + ", ".join(f"{k} {v}" for k, v in sorted(mail.items()))
              + waiting)
    if live is None:
        print("  daemon: no status file (not running?)")
    else:
        stale = " (stale: daemon not running?)" if live["age_s"] > 30 else ""
        pbx = live.get("pbx", {})
        print(f"  daemon: pid {live.get('pid')}, updated {live['age_s']} s ago{stale}; "
              f"{pbx.get('type')} {pbx.get('host')}:{pbx.get('port')} "
              f"{'connected' if pbx.get('connected') else 'NOT connected'}")
        for name, m in live.get("modems", {}).items():
            print(f"  {name}: {m.get('state')}"
                  + (f" - {m['error']}" if m.get("error") else "")
                  + (f", signal {m['signal']}" if m.get("signal") is not None else "")
                  + (f", {m['operator']}" if m.get("operator") else ""))
    return 0
