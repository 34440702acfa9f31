"""``textback forget NUMBER`` and ``textback purge``: personal data on request, and retention.

forget: deletes every call record, text (sent, received or queued), conversation,
follow-up, callback and staff e-mail about NUMBER, at once, while the daemon may run. The
opt-out is kept (opt_outs, opt_events): deleting it would let textback text the number
again. Deleted pages are overwritten (secure_delete). Take a backup first if you must keep
one; backups made earlier still hold the number.

purge: applies [retention] (message_days, call_days; 0 = keep for ever, the default):
blanks message bodies and deletes call records older than that. Run it daily from
systemd/textback-purge.timer or cron.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none, number_or_none, store_or_none
from textback.config import DEFAULT_PATH
from textback.privacy import PrivacyError, apply_retention, forget


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("forget", help="delete everything stored about a number "
                              "but its opt-out", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("number", metavar="NUMBER",
                   help="E.164 (+15551230001) or national in [trunks] default_region")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.set_defaults(func=run_forget)
    p = subparsers.add_parser("purge", help="apply [retention]: drop old message bodies "
                              "and call records", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.set_defaults(func=run_purge)


def run_forget(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    number = number_or_none(args.number, config, "textback forget")
    if number is None:
        return 2
    db = store_or_none(config, "forget")
    if db is None:
        return 1
    try:
        purged = forget(db, number)
    except PrivacyError as exc:
        print(f"textback forget: {exc}", file=sys.stderr)
        return 1
    print(f"{number} forgotten: {purged.summary()} deleted; its opt-out, if any, is kept")
    return 0


def run_purge(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    r = config.retention
    if r.message_days <= 0 and r.call_days <= 0:
        print("textback purge: [retention] keeps everything (message_days and call_days "
              "are 0): nothing to do")
        return 0
    db = store_or_none(config, "purge")
    if db is None:
        return 1
    try:
        purged = apply_retention(db, message_days=r.message_days, call_days=r.call_days)
    except PrivacyError as exc:
        print(f"textback purge: {exc}", file=sys.stderr)
        return 1
    print(f"textback purge: {purged.summary()} past [retention] removed")
    return 0
