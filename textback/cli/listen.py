"""``textback listen --pbx asterisk|freeswitch``: decide calls live, one JSON line per call.

Same output as ``textback replay``. The PBX secret is read from the environment variable
named by ``--secret-env`` (default TEXTBACK_PBX_SECRET) or from ``--secret-file``; it is
never a command-line argument (``ps`` would show it) and never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from textback import secret_files
from textback.cli._common import add_tracker_options, tracker_config
from textback.pbx.outcome import CallOutcome

DEFAULT_PORTS = {"asterisk": 5038, "freeswitch": 8021}
DEFAULT_USERS = {"asterisk": "textback", "freeswitch": ""}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "listen",
        help="connect to the PBX and print one JSON line per finished call",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pbx", required=True, choices=["asterisk", "freeswitch"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, help="default 5038 (AMI) or 8021 (ESL)")
    p.add_argument("--user", help="AMI username (default textback); unused for ESL")
    p.add_argument("--secret-env", default="TEXTBACK_PBX_SECRET", metavar="NAME",
                   help="environment variable holding the secret (default TEXTBACK_PBX_SECRET)")
    p.add_argument("--secret-file", type=Path, metavar="PATH",
                   help="file holding the secret (first line); must not be group/world-readable")
    add_tracker_options(p)
    p.add_argument("--ping-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="a link that answers nothing for this long is dead and reconnected")
    p.set_defaults(func=run)


def read_secret(secret_file: Path | None, secret_env: str) -> str:
    """The PBX secret, from a file (checked for loose permissions) or the environment."""
    if secret_file is not None:
        try:
            st = secret_file.stat()
        except OSError as exc:
            raise SystemExit(f"textback listen: cannot read secret file {secret_file}: "
                             f"{exc.strerror}") from None
        problem = secret_files.access_problem(secret_file, st,
                                              secret_files.service_identity())
        if problem:
            raise SystemExit(f"textback listen: {problem}")
        lines = secret_file.read_text(encoding="utf-8").splitlines()
        return lines[0].strip() if lines else ""
    value = os.environ.get(secret_env)
    if value is None:
        raise SystemExit(f"textback listen: no secret: set {secret_env} or pass --secret-file")
    return value


def _emit(outcome: CallOutcome) -> None:
    sys.stdout.write(json.dumps(outcome.to_record(), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    config = tracker_config(args)
    secret = read_secret(args.secret_file, args.secret_env)
    port = args.port or DEFAULT_PORTS[args.pbx]
    try:
        if args.pbx == "asterisk":
            from textback.pbx.asterisk.client import listen

            user = args.user or DEFAULT_USERS["asterisk"]
            return asyncio.run(listen(args.host, port, user, secret, config, _emit,
                                      ping_timeout=args.ping_timeout))
        from textback.pbx.freeswitch.client import listen as esl_listen

        return asyncio.run(esl_listen(args.host, port, secret, config, _emit,
                                      ping_timeout=args.ping_timeout))
    except KeyboardInterrupt:
        return 130
