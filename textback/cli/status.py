"""``textback status [--config PATH] [--json]``: is it working, today, in numbers.

Reads the store (calls, skips by reason, texts, outbox depth) and the status file the
running daemon refreshes every few seconds (modem health, PBX link, the store's current
outage). Works while the daemon runs: the store is in WAL mode, so reading never blocks it.
The store is opened read-only: status never creates, migrates or writes it.

It is also a health check in the monitoring-plugin convention (Nagios, Icinga, Zabbix,
check_mk): the first line is ``TEXTBACK <STATE> - <summary>``, the exit status 0 OK,
1 WARNING (a sender down while another is up, the PBX link down for a moment, texts overdue
in the outbox), 2 CRITICAL (no daemon or a status file older than 30 s, a store error, the
PBX link down for more than 60 s, no sender up), 3 UNKNOWN (no config or no store).
``--json`` gives the same verdict in "state" and "summary".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none
from textback.config import DEFAULT_PATH
from textback.daemon import status_path
from textback.migrations import LATEST
from textback.report import parse_since
from textback.store import StoreError, StoreUnavailable, describe_unavailable

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
STALE_S = 30.0  # the daemon rewrites its status file every 5 s at most
PBX_DOWN_CRITICAL_S = 60.0  # the AMI/ESL clients retry every 20 s at most
OUTBOX_OVERDUE_S = 600.0  # a queued text this long past its time is stuck


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="today's calls, texts, skips; modem and PBX health",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.add_argument("--since", metavar="DATE",
                   help="count from this date (2026-03-01: midnight in the business's time "
                        "zone) or date and time (2026-03-01T09:00), as report --since; "
                        "default: midnight today")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=run)


def midnight() -> float:
    """Local midnight today (where ``status`` counts from)."""
    t = time.localtime()
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


async def gather(db_path: Path, since: float, now: float | None = None) -> dict[str, Any]:
    from textback.store import Store

    now = time.time() if now is None else now
    store = await Store.open(db_path, readonly=True)
    try:
        schema = await store.schema_version()
        overdue = await _rows(store, "SELECT count(*) AS n, min(not_before) AS oldest FROM "
                              "outbox WHERE state = 'queued' AND not_before < ?",
                              (now - OUTBOX_OVERDUE_S,))
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
        recent = "(state = 'queued' OR (state != 'queued' AND created_at >= ?))"
        # a store from before the channel column holds e-mail only
        channels = bool(await _rows(store, "SELECT 1 FROM pragma_table_info('staff_mail') "
                                    "WHERE name = 'channel'", ()))
        email_only = " AND channel = 'email'" if channels else ""
        mail = await _rows(
            store, f"SELECT state, count(*) AS n FROM staff_mail WHERE {recent}{email_only} "
            "GROUP BY state", (since,))
        # Apprise notifications and webhook events, the same way
        notify = await _rows(
            store, f"SELECT state, count(*) AS n FROM staff_mail WHERE {recent} AND "
            "channel = 'apprise' GROUP BY state", (since,))
        hooks = await _rows(
            store, f"SELECT state, count(*) AS n FROM webhook_deliveries WHERE {recent} "
            "GROUP BY state", (since,))
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
        "staff_notify": {r["state"]: r["n"] for r in notify},
        "webhooks": {r["state"]: r["n"] for r in hooks},
        "schema": schema,
        "outbox_overdue": overdue[0]["n"] if overdue else 0,
        "outbox_overdue_since": overdue[0]["oldest"] if overdue else None,
    }


async def _rows(store: Any, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """A query on a table an older schema may not have yet: no rows then."""
    try:
        return list(await store.fetchall(sql, params))
    except sqlite3.OperationalError as exc:
        if "no such" in str(exc):
            return []
        raise


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, int(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _hm(at: Any) -> str:
    return time.strftime("%H:%M", time.localtime(float(at))) if at is not None else "?"


def assess(report: dict[str, Any], now: float) -> tuple[int, str]:
    """The verdict: (exit status, ``TEXTBACK <STATE> - <summary>``), worst problem first."""
    problems: list[tuple[int, str]] = []
    live = report.get("daemon")
    if live is None:
        where = report.get("status_file")
        problems.append((CRITICAL, "daemon not running (no status file"
                         + (f" {where}" if where else "") + ")"))
    elif not live.get("running", True):
        problems.append((CRITICAL, f"daemon not running (stopped at {_hm(live.get('at'))})"))
    elif now - float(live.get("at", 0)) > STALE_S:
        problems.append((CRITICAL, "daemon not running (status "
                         f"{_ago(now - float(live.get('at', 0)))} old)"))
    else:
        problems += _live_problems(live, now)
    schema = report.get("schema")
    if schema is not None and schema < LATEST:
        problems.append((WARNING, f"store schema version {schema}, older than this textback "
                                  f"({LATEST}): `textback run` migrates it at start"))
    if report.get("outbox_overdue"):
        oldest = report.get("outbox_overdue_since")
        problems.append((WARNING, f"outbox: {report['outbox_overdue']} texts overdue"
                         + (f" (oldest due {_ago(now - oldest)} ago)" if oldest else "")))
    if problems:
        worst = max(code for code, _ in problems)
        ordered = sorted(problems, key=lambda p: -p[0])
        return worst, f"TEXTBACK {STATES[worst]} - " + "; ".join(m for _, m in ordered)
    return OK, f"TEXTBACK OK - {_healthy_summary(report)}"


def _live_problems(live: dict[str, Any], now: float) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    store = live.get("store") or {}
    if store.get("error"):
        out.append((CRITICAL, f"store: {describe_unavailable(str(store.get('kind')))} since "
                              f"{_hm(store.get('since'))} ({store['error']})"))
    pbx = live.get("pbx") or {}
    if pbx.get("connected") is False:
        since = pbx.get("down_since")
        down = now - float(since) if since is not None else None
        what = f"pbx {pbx.get('type')} {pbx.get('host')}:{pbx.get('port')} link down"
        if down is None or down > PBX_DOWN_CRITICAL_S:
            out.append((CRITICAL, what + (f" for {_ago(down)}" if down is not None else "")))
        else:
            out.append((WARNING, f"{what} for {_ago(down)} (reconnecting)"))
    senders: dict[str, bool] = live.get("senders") or {}
    modems = live.get("modems") or {}

    def why(name: str) -> str:
        m = modems.get(name)
        if not m:
            return name
        return f"{name} {m.get('state')}" + (f" ({m['error']})" if m.get("error") else "")

    up = [n for n, ok in senders.items() if ok]
    off = [n for n, ok in senders.items() if not ok]
    if senders and not up:
        out.append((CRITICAL, "no sender up: " + ", ".join(why(n) for n in off)))
    elif off:
        out.append((WARNING, ", ".join(why(n) for n in off) + f" down ({', '.join(up)} up)"))
    return out


def _healthy_summary(report: dict[str, Any]) -> str:
    live = report.get("daemon") or {}
    connected = (live.get("pbx") or {}).get("connected")
    senders = live.get("senders") or {}
    parts = [f"pbx {'up' if connected else 'unknown' if connected is None else 'down'}",
             f"senders {sum(1 for ok in senders.values() if ok)}/{len(senders)} up"]
    if live.get("outbox_queued") is not None:
        parts.append(f"outbox {live['outbox_queued']} queued")
    if "texts" in report:
        parts.append(f"{sum(report['texts'].values())} texts today")
    return ", ".join(parts)


def read_live(path: Path, now: float) -> dict[str, Any] | None:
    """The daemon's status file; None when there is none. A read racing the daemon's
    in-place rewrite (disk full) can see half a file: read again."""
    for _ in range(3):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            live: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError:
            time.sleep(0.05)
            continue
        live["age_s"] = round(now - float(live.get("at", 0)), 1)
        return live
    return None


def _verdict_only(args: argparse.Namespace, code: int, summary: str) -> int:
    if args.json:
        print(json.dumps({"state": STATES[code], "summary": summary}, indent=1))
    else:
        print(f"TEXTBACK {STATES[code]} - {summary}")
    return code


def run(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return _verdict_only(args, UNKNOWN, "config not readable (`textback check-config` "
                                            "shows every problem)")
    db_path = config.store.path
    if not db_path.exists():
        return _verdict_only(args, UNKNOWN, f"store: no store at {db_path} yet (has "
                                            "`textback run` started?)")
    now = time.time()
    if args.since is not None:
        try:
            since = parse_since(args.since, config.hours.timezone)
        except ValueError as exc:
            print(f"textback status: --since {exc}", file=sys.stderr)
            return UNKNOWN
    else:
        since = midnight()
    try:
        report = asyncio.run(gather(db_path, since, now))
    except StoreError as exc:
        return _verdict_only(args, CRITICAL, str(exc))
    except StoreUnavailable as exc:
        return _verdict_only(args, CRITICAL, exc.admin_line(db_path))
    live_path = status_path(db_path)
    try:
        live = read_live(live_path, now)
    except OSError as exc:
        return _verdict_only(args, UNKNOWN, f"cannot read the status file {live_path} ({exc})")
    report["daemon"] = live
    report["status_file"] = str(live_path)
    code, line = assess(report, now)
    if args.json:
        report["state"], report["summary"] = STATES[code], line.split(" - ", 1)[1]
        print(json.dumps(report, indent=1))
        return code
    print(line)
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
    for key, label, why in (("staff_notify", "staff notifications (Apprise)",
                             "[did.staff] notify services"),
                            ("webhooks", "webhook events", "[[webhook]] receivers")):
        counts = report.get(key) or {}
        if counts:
            waiting = (f" - {counts['queued']} waiting for the {why}"
                       if counts.get("queued") else "")
            print(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                  + waiting)
    if live is None:
        print(f"  daemon: no status file {live_path} (not running?)")
    else:
        stale = " (stale: daemon not running?)" if live["age_s"] > STALE_S else ""
        pbx = live.get("pbx", {})
        print(f"  daemon: pid {live.get('pid')}, updated {live['age_s']} s ago{stale}; "
              f"{pbx.get('type')} {pbx.get('host')}:{pbx.get('port')} "
              f"{'connected' if pbx.get('connected') else 'NOT connected'}")
        for name, m in live.get("modems", {}).items():
            print(f"  {name}: {m.get('state')}"
                  + (f" - {m['error']}" if m.get("error") else "")
                  + (f", signal {m['signal']}" if m.get("signal") is not None else "")
                  + (f", {m['operator']}" if m.get("operator") else ""))
        store = live.get("store") or {}
        if store.get("error"):
            print(f"  store: {describe_unavailable(str(store.get('kind')))} since "
                  f"{_hm(store.get('since'))}: {store['error']}")
    return code
