"""``textback send --to NUMBER --text TEXT [--port PATH] [--wait-report SECONDS]``.

Sends one text through a GSM modem in PDU mode and prints one line per part with its
message reference (TP-MR), then, when asked, waits for the delivery reports. A number that
is not an address ('+' and digits, or digits) is refused before the port is opened.
Exit status: 0 sent (and, with --wait-report, every part delivered), 1 failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from textback.cli.modem import candidate_ports
from textback.modem.driver import DeliveryReport, ModemDriver, SendFailed
from textback.modem.errors import ModemError
from textback.modem.pdu import PduError, encode_submit


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("send", help="send one text through a GSM modem",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--to", required=True, metavar="NUMBER", help="+ and digits, or digits")
    p.add_argument("--text", required=True, metavar="TEXT")
    p.add_argument("--port", metavar="PATH", help="default: the first /dev/serial/by-id entry")
    p.add_argument("--wait-report", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for the delivery reports (0: do not ask for one)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="per-command time limit (AT+CMGS gets 120 s)")
    p.set_defaults(func=run)


async def send(args: argparse.Namespace, port: str) -> int:
    want_report = args.wait_report > 0
    driver = ModemDriver(port, command_timeout=args.timeout)
    reports: dict[int, DeliveryReport] = {}
    arrived = asyncio.Event()

    async def on_report(report: DeliveryReport) -> None:
        if report.part is not None and report.mr is not None:
            reports[report.mr] = report
            arrived.set()

    driver.report_handlers.append(on_report)
    try:
        await driver.open()
        info = await driver.initialise()
        for problem in info.problems:
            print(f"warning: {problem}", file=sys.stderr)
        try:
            parts = await driver.send(args.to, args.text, status_report=want_report)
        except SendFailed as exc:
            for r in exc.sent:
                print(f"part {r.part}/{r.parts} mr={r.mr}")
            print(f"error: {exc} ({'transient' if exc.transient else 'permanent'})",
                  file=sys.stderr)
            return 1
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
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await driver.close()


def run(args: argparse.Namespace) -> int:
    try:
        encode_submit(args.to, args.text)
    except PduError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ports = [args.port] if args.port else candidate_ports(None)
    if not ports:
        print("error: no modem found under /dev/serial/by-id; give --port", file=sys.stderr)
        return 2
    return asyncio.run(send(args, ports[0]))
