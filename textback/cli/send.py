"""``textback send --to NUMBER --text TEXT [--config PATH] [--did NUMBER] [--port PATH]
[--wait-report SECONDS]``.

Sends one text the way the daemon sends every text: through the outbox and its gate
(``textback.outbound.gate``, kind ``manual``), so the number plan, the deny list, the opt-
out list and the caps apply, and the text is recorded in the store (an outbox row, and the
message once sent). A refused text is recorded too (a ``skipped`` row with its reason) and
not sent.

When the daemon is running (its status file beside the store names a live pid and is fresh)
the text is queued for the daemon's dispatcher, which owns the modem port; otherwise this
command opens the modem itself (``--port``, else the config's first modem, else the first
/dev/serial/by-id entry) and prints one line per part with its message reference (TP-MR),
then, when asked, waits for the delivery reports. A number that is not an address ('+' and
digits, or digits) is refused before anything is opened.
Exit status: 0 sent or queued (and, with --wait-report, every part delivered), 1 refused or
failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none
from textback.cli.modem import candidate_ports
from textback.config import DEFAULT_PATH, Config, DidConfig
from textback.modem.driver import DeliveryReport, ModemDriver, SendFailed
from textback.modem.errors import ModemError
from textback.modem.pdu import PduError, encode_submit
from textback.numbers import to_e164

KIND = "manual"
STATUS_FRESH_S = 30.0  # the daemon rewrites its status file every 5 s at most
POLL_S = 0.5


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("send", help="send one text (through the daemon when it runs)",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", required=True, metavar="NUMBER", help="+ and digits, or digits")
    p.add_argument("--text", required=True, metavar="TEXT")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.add_argument("--did", metavar="NUMBER",
                   help="the [[did]] the text is from (default: the first one)")
    p.add_argument("--port", metavar="PATH",
                   help="when the daemon is not running: default the config's first modem, "
                        "else the first /dev/serial/by-id entry")
    p.add_argument("--wait-report", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for the delivery reports (0: do not ask for one)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="per-command time limit (AT+CMGS gets 120 s)")
    p.set_defaults(func=run)


def running_daemon(config: Config, now: float) -> int | None:
    """The pid of the daemon using this store, None when none runs: its status file
    (``<store>.status.json`` beside the store) must be fresh and name a live process."""
    from textback.daemon import status_path

    try:
        status = json.loads(status_path(config.store.path).read_text())
        pid, at = int(status["pid"]), float(status["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid <= 0 or now - at > STATUS_FRESH_S:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's (the textback service account)
    return pid


async def send(args: argparse.Namespace, config: Config, did: DidConfig) -> int:
    from textback.outbound.outbox import Outbox
    from textback.store import Store, StoreUnavailable

    try:
        store = await Store.open(config.store.path)
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        outbox = Outbox(store, config=config)
        now = time.time()
        pid = running_daemon(config, now)
        port = None
        if pid is None:
            ports = [args.port] if args.port else [m.port for m in config.modems] or \
                candidate_ports(None)
            if not ports:
                print("error: no modem found under /dev/serial/by-id; give --port",
                      file=sys.stderr)
                return 2
            port = ports[0]
        sender = _sender_for(config, port)
        # national digits become E.164 (the trunks' default region); short codes stay
        args.to = to_e164(args.to, config.trunks.default_region) or args.to
        queued = await outbox.enqueue(
            call_id=None, kind=KIND, number=args.to, did=did.number, body=args.text,
            senders=did.senders if pid is not None else (sender,), not_before=now, now=now)
        if queued.refused is not None:
            print(f"error: not sent to {args.to}: {queued.refused} ({queued.detail}); "
                  f"recorded as outbox row {queued.id}", file=sys.stderr)
            return 1
        if pid is not None:
            print(f"queued as outbox row {queued.id} for the running daemon (pid {pid})")
            if args.wait_report <= 0:
                return 0
            return await _wait_for_daemon(store, queued.id, args.wait_report)
        assert port is not None
        return await _send_direct(args, outbox, queued.id, port, sender)
    finally:
        await store.close()


def _sender_for(config: Config, port: str | None) -> str:
    for modem in config.modems:
        if port is None or modem.port == port:
            return modem.sender
    return "modem:cli"


async def _send_direct(args: argparse.Namespace, outbox: Any, row_id: int, port: str,
                       sender: str) -> int:
    """No daemon: claim our row and send it through the modem here, recording each step."""
    item = await outbox.claim(row_id, time.time())
    if item is None:  # a daemon started meanwhile and took it
        print(f"queued as outbox row {row_id}; the daemon took it")
        return 0
    want_report = args.wait_report > 0
    driver = ModemDriver(port, command_timeout=args.timeout)
    reports: dict[int, DeliveryReport] = {}
    arrived = asyncio.Event()

    async def on_report(report: DeliveryReport) -> None:
        if report.part is not None and report.mr is not None:
            reports[report.mr] = report
            if report.category in ("delivered", "failed"):
                await outbox.part_report(sender, report.mr, report.category == "delivered",
                                         time.time())
            arrived.set()

    async def committed() -> None:
        await outbox.mark_handed(row_id, time.time())

    driver.report_handlers.append(on_report)
    try:
        await driver.open()
        info = await driver.initialise()
        for problem in info.problems:
            print(f"warning: {problem}", file=sys.stderr)
        try:
            parts = await driver.send(args.to, args.text, status_report=want_report,
                                      on_commit=committed)
        except SendFailed as exc:
            for r in exc.sent:
                print(f"part {r.part}/{r.parts} mr={r.mr}")
            if exc.sent:  # some parts went: recorded as sent, never resent
                await outbox.mark_sent(row_id, [r.mr for r in exc.sent if r.mr is not None],
                                       sender, time.time(), tracked=False)
            else:
                await outbox.mark_failed(row_id, str(exc), permanent=True, now=time.time())
            print(f"error: {exc} ({'transient' if exc.transient else 'permanent'})",
                  file=sys.stderr)
            return 1
        await outbox.mark_sent(row_id, [r.mr for r in parts if r.mr is not None], sender,
                               time.time())
        for r in parts:
            print(f"part {r.part}/{r.parts} mr={r.mr}")
        if not want_report:
            return 0
        expected = {r.mr for r in parts if r.mr is not None}
        deadline = asyncio.get_running_loop().time() + args.wait_report
        while not expected <= set(reports):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), left)
        ok = True
        for r in parts:
            rep = reports.get(r.mr) if r.mr is not None else None
            if rep is None:
                print(f"report mr={r.mr}: none within {args.wait_report:g} s")
                ok = False
            else:
                print(f"report mr={r.mr}: {rep.category} ({rep.meaning})")
                ok = ok and rep.category == "delivered"
        return 0 if ok else 1
    except ModemError as exc:
        current = await outbox.get(row_id)
        if current is not None and current.state == "sending":
            await outbox.mark_failed(row_id, str(exc), permanent=True, now=time.time())
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await driver.close()


async def _wait_for_daemon(store: Any, row_id: int, wait_s: float) -> int:
    """Follow our row in the store while the daemon sends it: its parts, then the reports."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    row = None
    while loop.time() < deadline:
        row = await store.fetchone("SELECT state, last_error, message_id FROM outbox "
                                   "WHERE id = ?", (row_id,))
        if row is None or row["state"] not in ("queued", "sending"):
            break
        await asyncio.sleep(POLL_S)
    if row is None or row["message_id"] is None:
        state = row["state"] if row is not None else "missing"
        why = f": {row['last_error']}" if row is not None and row["last_error"] else ""
        print(f"not sent within {wait_s:g} s (state {state}{why})")
        return 1
    parts = await store.fetchall("SELECT part_no, mr, status FROM message_parts WHERE "
                                 "message_id = ? ORDER BY part_no", (row["message_id"],))
    for p in parts:
        print(f"part {p['part_no']}/{len(parts)} mr={p['mr']}")
    while loop.time() < deadline:
        parts = await store.fetchall("SELECT part_no, mr, status FROM message_parts WHERE "
                                     "message_id = ? ORDER BY part_no", (row["message_id"],))
        if all(p["status"] != "sent" for p in parts):
            break
        await asyncio.sleep(POLL_S)
    ok = bool(parts)
    for p in parts:
        if p["status"] == "sent":
            print(f"report mr={p['mr']}: none within {wait_s:g} s")
            ok = False
        else:
            print(f"report mr={p['mr']}: {p['status']}")
            ok = ok and p["status"] == "delivered"
    return 0 if ok else 1


def run(args: argparse.Namespace) -> int:
    try:
        encode_submit(args.to, args.text)
    except PduError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = config_or_none(args.config)
    if config is None:
        return 2
    did = config.did(args.did) if args.did else (config.dids[0] if config.dids else None)
    if did is None:
        print(f"error: no [[did]] with number {args.did!r} in the config" if args.did
              else "error: the config has no [[did]]", file=sys.stderr)
        return 2
    return asyncio.run(send(args, config, did))
