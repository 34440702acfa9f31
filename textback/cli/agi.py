"""``textback agi serve [--host 127.0.0.1] [--port 4573]``: the FastAGI trigger on its own.

Prints one JSON line per call the dialplan reports, exactly the ``textback replay`` /
``textback listen`` contract (the same keys, plus ``"trigger": "fastagi"``).
The daemon (``textback run``) serves the same trigger itself when [agi] is enabled; this
command is for trying the dialplan snippet and for piping calls into other tools.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from textback.agi.server import DEFAULT_HOST, DEFAULT_PORT, FastAgiServer
from textback.outcome import CallOutcome


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "agi",
        help="FastAGI missed-call trigger (for PBXes without AMI access)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="agi_command", metavar="ACTION", required=True)
    s = sub.add_parser("serve", help="serve FastAGI and print one JSON line per call",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--host", default=DEFAULT_HOST,
                   help="address to bind (default 127.0.0.1; keep it on loopback)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help="default 4573")
    s.add_argument("--path", action="append", metavar="NAME",
                   help="AGI script path(s) to accept (default: missed)")
    s.add_argument("--region", metavar="CC", help="region for national numbers, e.g. US, GB")
    s.set_defaults(func=run)


async def _emit(outcome: CallOutcome) -> None:
    sys.stdout.write(json.dumps(outcome.to_record(), ensure_ascii=False) + "\n")
    sys.stdout.flush()


async def _serve(args: argparse.Namespace) -> int:
    server = FastAgiServer(_emit, args.host, args.port, paths=args.path or ("missed",),
                           default_region=args.region)
    try:
        await server.start()
    except OSError as exc:
        print(f"textback agi serve: cannot listen on {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"textback agi serve: listening on {args.host}:{server.bound_port}",
          file=sys.stderr, flush=True)
    try:
        await server.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        await server.close()
    return 0


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print(f"textback agi serve: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 130
