"""``textback backup PATH`` and ``textback restore BACKUP``: a copy of the store, and back.

backup: SQLite's online backup API, safe while the daemon runs (it keeps writing; the copy
is one consistent moment). PATH may be a directory (then textback-YYYYmmdd-HHMMSS.db in
it). The copy is mode 0600 (it holds callers' numbers and texts), written beside PATH
and renamed once it passes an integrity check. Exit 0 done, 1 failed, 2 config problem.

restore: stop the daemon first (systemctl stop textback). Checks the backup (integrity,
schema not newer than this textback), keeps the current store beside it as
<store>.before-restore-<time>, then copies the backup in. Start the daemon again after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from textback.cli._common import config_or_none, store_or_none
from textback.config import DEFAULT_PATH
from textback.privacy import PrivacyError, backup, restore


def register(subparsers: Any) -> None:
    for name, help_text in (("backup", "copy the store to PATH (safe while the daemon runs)"),
                            ("restore", "replace the store with a backup (daemon stopped)")):
        p = subparsers.add_parser(name, help=help_text, description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("path", type=Path, metavar="PATH" if name == "backup" else "BACKUP",
                       help="file or directory to write" if name == "backup"
                       else "a file made by textback backup")
        p.add_argument("--config", type=Path, metavar="PATH",
                       help=f"config file (default $TEXTBACK_CONFIG or {DEFAULT_PATH})")
        if name == "backup":
            p.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
        p.set_defaults(func=run_backup if name == "backup" else run_restore)


def run_backup(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    db = store_or_none(config, "backup")
    if db is None:
        return 1
    try:
        done = backup(db, args.path, overwrite=args.force)
    except (PrivacyError, OSError) as exc:
        print(f"textback backup: {exc}", file=sys.stderr)
        return 1
    print(f"backup of {db} written to {done.path} ({done.bytes} bytes, schema "
          f"{done.schema_version})")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    config = config_or_none(args.config)
    if config is None:
        return 2
    try:
        kept = restore(args.path, config.store.path)
    except (PrivacyError, OSError) as exc:
        print(f"textback restore: {exc}", file=sys.stderr)
        return 1
    print(f"{config.store.path} restored from {args.path}"
          + (f"; the store as it was is kept in {kept}" if kept.exists() else ""))
    return 0
