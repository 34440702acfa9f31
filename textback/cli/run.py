"""``textback run [--config PATH]``: the daemon (systemd runs this; see systemd/).

A missing or broken config is one clear error and exit status 2, with nothing started.
A store that cannot be used at start (disk full, unwritable, locked, corrupt, made by a
newer textback) is one line naming the store and the cause, and exit status 1: systemd
restarts the service (the unit keeps retrying), so it starts by itself once there is space.
Logs go to stderr as key=value lines (event= first), which journald stores with the unit's
name; under systemd each line starts with its syslog priority (<4> warning ...), so
journalctl -p warning works. Every event: docs/logging.md.
SIGHUP (systemctl reload textback) reloads the config: a bad file is refused and the
daemon runs on; what needs a restart is logged (docs/deploy.md, "Changing the config").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from textback.config import DEFAULT_PATH, ConfigError, load_config
from textback.logfmt import log, setup_logging

logger = logging.getLogger("textback.config")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run the daemon: watch the PBX, text missed callers",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, metavar="PATH",
                   help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
    p.add_argument("--log-level", default=None, type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log threshold; default [log] level in the config, else INFO "
                        "(given here, it wins over the config, also on reload)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        print("textback run: not started (fix the config; `textback check-config` shows "
              "every problem)", file=sys.stderr)
        return 2
    setup_logging(args.log_level or config.log.level or "INFO")
    for warning in config.warnings:
        log(logger, logging.WARNING, "config_warning", key=warning.key, line=warning.line,
            problem=warning.message)
    from textback.daemon import run_daemon
    from textback.store import StoreError, StoreUnavailable

    try:
        return asyncio.run(run_daemon(config, args.log_level))
    except StoreError as exc:
        print(f"textback run: {exc}; not started", file=sys.stderr)
    except StoreUnavailable as exc:
        print(f"textback run: {exc.admin_line(config.store.path)}; not started",
              file=sys.stderr)
    return 1
