"""What several commands do first: load the config, find the store, or say why not.

Both helpers print the problem on stderr and return None; the command then returns its
documented status (2 for a config problem, 1 for a store that does not exist yet), so every
command fails the same way for the same cause.
"""

from __future__ import annotations

import sys
from pathlib import Path

from textback.config import Config, ConfigError, load_config


def config_or_none(path: Path | None) -> Config | None:
    """The validated config, or None after printing every problem (exit status 2)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return None


def store_or_none(config: Config, command: str) -> Path | None:
    """The store's path when it exists, else None after a hint (exit status 1)."""
    db = config.store.path
    if not db.exists():
        print(f"textback {command}: no store at {db} yet (has `textback run` started?)",
              file=sys.stderr)
        return None
    return db
