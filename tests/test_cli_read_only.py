"""The commands that only read the store (`report`, `conversations`) open it read-only.

Why: opened read-write, `sudo textback report` on a stopped daemon's store created its -wal
and -shm files as root (a crash then leaves them for the daemon, which runs as its own
user, to trip over), and after a package upgrade it migrated the store under a daemon
still running the old schema. Read-only, as `textback status` already was: nothing is
created, migrated or written; an older store is named with what to do; a damaged one is
one line, exit 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from tests.report_seed import seed, write_config
from textback.cli import main
from textback.migrations import LATEST, MIGRATIONS

COMMANDS = (["report"], ["conversations"])


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("command", COMMANDS)
def test_reading_leaves_the_store_exactly_as_it_was(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(seed(tmp_path))
    db = tmp_path / "textback.db"
    before_files = files(tmp_path)
    past = time.time() - 3600
    os.utime(db, (past, past))
    before = db.stat()
    assert main([*command, "--config", str(tmp_path / "textback.toml")]) == 0
    assert capsys.readouterr().out
    after = db.stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert files(tmp_path) == before_files  # no -wal, no -shm left behind


@pytest.mark.parametrize("command", COMMANDS)
def test_an_older_store_is_named_and_never_migrated(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "textback.db"
    with sqlite3.connect(db) as con:  # a store made by textback 1 (schema version 1)
        con.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    con.close()
    config, _ = write_config(tmp_path)
    assert main([*command, "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"schema version 1, older than this textback ({LATEST})" in err
    assert "start the daemon" in err and "Traceback" not in err
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    con.close()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_damaged_store_is_one_line(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "textback.db"
    db.write_bytes(b"this is not a database, it is a text file " * 200)
    config, _ = write_config(tmp_path)
    assert main([*command, "--config", str(config)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines()
           if "event=config_warning" not in line]
    assert len(err) == 1 and str(db) in err[0] and "not a textback store" in err[0], err
