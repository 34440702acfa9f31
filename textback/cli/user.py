"""``textback user add|list|remove NAME [--config PATH]``: the web app's staff accounts.

``add`` asks for the password twice on the terminal (getpass; never an argument, so it is
not left in the shell history or the process list) and stores only its argon2 hash.
``remove`` also ends the user's sessions. Every change is written to the audit table as
``cli:<unix user>``. The store is created (and migrated) if the daemon has not run yet.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import pwd
import sys
import time
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none
from textback.config import DEFAULT_PATH


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("user", help="web app users: add (asks the password), list, "
                              "remove", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("add", "list", "remove"))
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.set_defaults(func=run)


def actor() -> str:
    try:
        return "cli:" + pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"cli:uid{os.getuid()}"


def ask_password(name: str) -> str | None:
    """The new password, typed twice; None (after saying why) when the two differ."""
    first = getpass.getpass(f"password for {name}: ")
    second = getpass.getpass("again: ")
    if first != second:
        print("textback user add: the two passwords differ; nothing changed", file=sys.stderr)
        return None
    return first


async def _apply(db: Path, action: str, name: str | None, password: str | None) -> int:
    from textback.store import Store
    from textback.web import audit, auth

    store = await Store.open(db)
    try:
        now = time.time()
        if action == "list":
            users = await auth.list_users(store)
            for user, created in users:
                print(f"{user}  (added {time.strftime('%Y-%m-%d %H:%M', time.localtime(created))})")
            if not users:
                print("no web users yet: textback user add NAME")
            return 0
        assert name is not None
        if action == "add":
            assert password is not None
            await auth.add_user(store, name, password, now)
            await audit.record(store, actor=actor(), action="user-add", target=name,
                               detail=None, at=now)
            print(f"user {name} added")
            return 0
        if not await auth.remove_user(store, name):
            print(f"textback user remove: no user {name!r}", file=sys.stderr)
            return 1
        await audit.record(store, actor=actor(), action="user-remove", target=name,
                           detail=None, at=now)
        print(f"user {name} removed (and logged out)")
        return 0
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    from textback.web.auth import UserError, check_name, check_password

    config = config_or_none(args.config)
    if config is None:
        return 2
    if args.action != "list" and not args.name:
        print(f"textback user {args.action}: NAME is required", file=sys.stderr)
        return 2
    password = None
    try:
        if args.name:
            check_name(args.name)
        if args.action == "add":
            password = ask_password(args.name)
            if password is None:
                return 1
            check_password(password)
        return asyncio.run(_apply(config.store.path, args.action, args.name, password))
    except UserError as exc:
        print(f"textback user {args.action}: {exc}", file=sys.stderr)
        return 1
