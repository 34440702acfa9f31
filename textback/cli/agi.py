"""``textback agi serve --token-file PATH [--host 127.0.0.1] [--port 4573]``: the FastAGI
trigger on its own.

Every request's agi:// URL must carry the token read from ``--token-file`` (``?token=…``,
see docs/asterisk.md); requests without it are refused. A host off loopback is refused
unless ``--allow-remote`` is given (then a warning).

Prints one JSON line per call the dialplan reports, exactly the ``textback replay`` /
``textback listen`` contract (the same keys, plus ``"trigger": "fastagi"``).
The daemon (``textback run``) serves the same trigger itself when [agi] is enabled; this
command is for trying the dialplan snippet and for piping calls into other tools.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
import sys
from pathlib import Path
from typing import Any

from textback.pbx.asterisk.agi_access import MIN_TOKEN_LENGTH, is_loopback_host
from textback.pbx.asterisk.agi_server import DEFAULT_HOST, DEFAULT_PORT, FastAgiServer
from textback.pbx.outcome import CallOutcome


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
    s.add_argument("--token-file", type=Path, metavar="PATH",
                   help="file holding the secret token the agi:// URL carries (required; "
                        "mode 600)")
    s.add_argument("--allow-remote", action="store_true",
                   help="allow a --host that is not loopback (the token is then the only "
                        "protection)")
    s.add_argument("--path", action="append", metavar="NAME",
                   help="AGI script path(s) to accept (default: missed)")
    s.add_argument("--region", metavar="CC", help="region for national numbers, e.g. US, GB")
    s.set_defaults(func=run)


async def _emit(outcome: CallOutcome) -> None:
    sys.stdout.write(json.dumps(outcome.to_record(), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def read_token(path: Path) -> str:
    """The token in ``path`` (first line); ValueError saying what is wrong (never the token)."""
    try:
        mode = path.stat().st_mode
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} can be read by group or others; fix: chmod 600 {path}")
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"{path}: the token must be at least {MIN_TOKEN_LENGTH} characters")
    return token


async def _serve(args: argparse.Namespace, token: str) -> int:
    server = FastAgiServer(_emit, args.host, args.port, token=token,
                           paths=args.path or ("missed",), default_region=args.region)
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
    if args.token_file is None:
        print("textback agi serve: --token-file PATH is required: without a token any local "
              "user could report calls (docs/asterisk.md)", file=sys.stderr)
        return 2
    try:
        token = read_token(args.token_file)
    except ValueError as exc:
        print(f"textback agi serve: --token-file: {exc}", file=sys.stderr)
        return 2
    if not is_loopback_host(args.host):
        if not args.allow_remote:
            print(f"textback agi serve: --host {args.host} is not a loopback address; "
                  "pass --allow-remote if the PBX runs on another machine", file=sys.stderr)
            return 2
        print(f"textback agi serve: WARNING: listening on {args.host}, beyond this machine: "
              "the token is the only protection; firewall the port", file=sys.stderr)
    try:
        return asyncio.run(_serve(args, token))
    except KeyboardInterrupt:
        return 130
