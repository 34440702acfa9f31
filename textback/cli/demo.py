"""``textback demo [--serve]``: the demo of ``make demo`` (textback/demo): a replayed Asterisk
capture, a simulated modem and the real daemon; with ``--serve`` the daemon stays up with the
web app on 127.0.0.1:8025 and prints a one-time login link (Ctrl-C stops it).

It runs ``python -m textback.demo`` in place of this process: the demo uses the test doubles
(textback.testing), which the command line itself never imports.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="the end-to-end demo; --serve keeps the web app up",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", action="store_true",
                   help="keep the daemon up with the web app on 127.0.0.1:8025")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = real time)")
    p.set_defaults(func=run)


def command(args: argparse.Namespace) -> list[str]:
    argv = [sys.executable, "-m", "textback.demo", "--speed", str(args.speed)]
    return argv + (["--serve"] if args.serve else [])


def run(args: argparse.Namespace) -> int:
    argv = command(args)
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0  # not reached
