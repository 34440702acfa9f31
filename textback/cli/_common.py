"""What several commands do first: load the config, find the store, or say why not.

The helpers print the problem on stderr and return None; the command then returns its
documented status (2 for a config problem, 1 for a store that does not exist yet), so every
command fails the same way for the same cause.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textback.config import Config, ConfigError, load_config
from textback.pbx.stream import DEFAULT_SETTLE_S, TrackerConfig

if TYPE_CHECKING:
    from textback.store import Store


def config_or_none(path: Path | None) -> Config | None:
    """The validated config, or None after printing every problem (exit status 2)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return None


def number_or_none(raw: str, config: Config, where: str) -> str | None:
    """A phone number argument as E.164 (a national number read in ``[trunks]
    default_region``), or None after saying on stderr, after ``where`` (e.g.
    "textback report: --did"), that it is not one: every command words it alike."""
    from textback.numbers import to_e164
    from textback.report import printable

    number = to_e164(raw, config.trunks.default_region)
    if number is None:
        print(f"{where}: {printable(raw)!r} is not a phone number (write +15551230001, or a "
              "national number with [trunks] default_region)", file=sys.stderr)
    return number


def store_or_none(config: Config, command: str) -> Path | None:
    """The store's path when it exists, else None after a hint (exit status 1)."""
    db = config.store.path
    if not db.exists():
        print(f"textback {command}: no store at {db} yet (has `textback run` started?)",
              file=sys.stderr)
        return None
    return db


@asynccontextmanager
async def store_for_reading(db: Path) -> AsyncIterator[Store]:
    """The store opened read-only, for a command that only reads it (``report``,
    ``conversations``): nothing is created, migrated or written, so whoever runs it
    (root, by sudo) leaves no file of theirs beside the daemon's and never upgrades the
    schema under a daemon still running the old textback. An older store raises
    ``StoreError`` with what to do; see :func:`store_problem`."""
    from textback.migrations import LATEST
    from textback.store import Store, StoreError

    store = await Store.open(db, readonly=True)
    try:
        version = await store.schema_version()
        if version < LATEST:
            raise StoreError(f"store: {db} has schema version {version}, older than this "
                             f"textback ({LATEST}): start the daemon (textback run) once to "
                             "upgrade it, then ask again")
        yield store
    finally:
        await store.close()


def store_problem(exc: BaseException, db: Path, command: str) -> int:
    """Say on stderr, in one line, why the store could not be read; exit status 1."""
    from textback.store import StoreUnavailable

    why = exc.admin_line(db) if isinstance(exc, StoreUnavailable) else str(exc)
    print(f"textback {command}: {why}", file=sys.stderr)
    return 1


def add_tracker_options(p: argparse.ArgumentParser) -> None:
    """The call-tracker options ``replay`` and ``listen`` share (same names, same meaning)."""
    p.add_argument("--settle", type=float, default=DEFAULT_SETTLE_S, metavar="SECONDS",
                   help="how long after a call's last channel is gone it becomes final "
                        f"(default {DEFAULT_SETTLE_S:g})")
    p.add_argument("--trunk-context", action="append", metavar="CONTEXT",
                   help="Asterisk dialplan context of inbound trunk calls (repeatable)")
    p.add_argument("--region", metavar="CC", help="region for national numbers, e.g. US, GB")


def tracker_config(args: argparse.Namespace) -> TrackerConfig:
    """TrackerConfig from the options of ``add_tracker_options`` (defaults where unset)."""
    kwargs: dict[str, Any] = {"settle_s": args.settle, "default_region": args.region}
    if args.trunk_context:
        kwargs["trunk_contexts"] = tuple(args.trunk_context)
    return TrackerConfig(**kwargs)
