"""backup / restore / forget / purge (issue 16 item 10), on a store written by the real
pipeline, outbox and inbound handler (tests/report_seed.py)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.report_seed import A, B, C, seed, write_config
from textback.cli import main
from textback.config import load_config

A_REPLY = "ok thanks, call me after 5"


def _count(db: Path, sql: str, *params: object) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def _per_number(db: Path, number: str) -> dict[str, int]:
    return {
        "calls": _count(db, "SELECT count(*) FROM calls WHERE caller = ? OR callee = ?",
                        number, number),
        "messages": _count(db, "SELECT count(*) FROM messages WHERE number = ?", number),
        "outbox": _count(db, "SELECT count(*) FROM outbox WHERE number = ?", number),
        "conversations": _count(db, "SELECT count(*) FROM conversations WHERE number = ?",
                                number),
        "opt_outs": _count(db, "SELECT count(*) FROM opt_outs WHERE number = ?", number),
    }


async def _seeded(tmp_path: Path) -> tuple[Path, Path]:
    config = await seed(tmp_path)
    path = tmp_path / "textback.toml"
    return path, config.store.path


async def test_backup_while_a_writer_holds_the_store(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The daemon's connection mid-transaction: the backup is the last committed state,
    mode 0600, and passes an integrity check."""
    cfg, db = await _seeded(tmp_path)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM messages")  # not committed: must not be in the copy
    try:
        out = tmp_path / "copy.db"
        assert main(["backup", str(out), "--config", str(cfg)]) == 0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert "written to" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert _per_number(out, A) == _per_number(db, A) and _per_number(out, A)["messages"] == 2
    assert _count(out, "SELECT count(*) FROM messages") == _count(
        db, "SELECT count(*) FROM messages")
    # a second backup to the same name is refused, not overwritten
    assert main(["backup", str(out), "--config", str(cfg)]) == 1
    assert "exists" in capsys.readouterr().err
    # a directory gets a dated file
    (tmp_path / "backups").mkdir()
    assert main(["backup", str(tmp_path / "backups"), "--config", str(cfg)]) == 0
    assert len(list((tmp_path / "backups").glob("textback-*.db"))) == 1


async def test_forget_deletes_everything_about_a_number_but_its_opt_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, db = await _seeded(tmp_path)
    before_c = _per_number(db, C)
    assert _per_number(db, A)["messages"] == 2 and _per_number(db, B)["opt_outs"] == 1
    assert main(["forget", A, "--config", str(cfg)]) == 0
    assert f"{A} forgotten" in capsys.readouterr().out
    assert _per_number(db, A) == {"calls": 0, "messages": 0, "outbox": 0,
                                  "conversations": 0, "opt_outs": 0}
    # the reply's text is gone from the file itself, not only from the tables
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert A_REPLY.encode() not in raw
    # B opted out: forgetting B keeps the opt-out (and its history)
    assert main(["forget", B, "--config", str(cfg)]) == 0
    after_b = _per_number(db, B)
    assert after_b["opt_outs"] == 1 and after_b["messages"] == 0 and after_b["calls"] == 0
    assert _count(db, "SELECT count(*) FROM opt_events WHERE number = ?", B) >= 1
    assert _per_number(db, C) == before_c  # nobody else touched
    assert main(["forget", "not-a-number", "--config", str(cfg)]) == 2


async def test_restore_brings_a_backup_back_and_keeps_the_old_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, db = await _seeded(tmp_path)
    copy = tmp_path / "copy.db"
    assert main(["backup", str(copy), "--config", str(cfg)]) == 0
    assert main(["forget", A, "--config", str(cfg)]) == 0
    assert main(["restore", str(copy), "--config", str(cfg)]) == 0
    assert "restored from" in capsys.readouterr().out
    assert _per_number(db, A)["messages"] == 2
    kept = list(tmp_path.glob("textback.db.before-restore-*"))
    assert len(kept) == 1 and _per_number(kept[0], A)["messages"] == 0
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    assert main(["restore", str(junk), "--config", str(cfg)]) == 1
    assert "not a textback store" in capsys.readouterr().err
    assert _per_number(db, A)["messages"] == 2  # a bad backup changes nothing


async def test_purge_applies_retention_and_keeps_by_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.daemon_fakes import NOW
    from textback import privacy

    monkeypatch.setattr(privacy, "_now", lambda: NOW + 31 * 86400)  # a month after the seed
    cfg, db = await _seeded(tmp_path)
    assert load_config(cfg).retention.message_days == 0  # default: keep
    assert main(["purge", "--config", str(cfg)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    calls = _count(db, "SELECT count(*) FROM calls")
    cfg.write_text(cfg.read_text() + "\n[retention]\nmessage_days = 30\ncall_days = 30\n")
    assert main(["purge", "--config", str(cfg)]) == 0
    assert "removed" in capsys.readouterr().out
    assert _count(db, "SELECT count(*) FROM messages WHERE body != ''") == 0
    assert _count(db, "SELECT count(*) FROM calls") == 0 < calls
    assert _per_number(db, B)["opt_outs"] == 1


def test_retention_keys_are_checked(tmp_path: Path) -> None:
    path, _ = write_config(tmp_path)
    path.write_text(path.read_text() + "\n[retention]\nmessage_days = -1\n")
    from textback.config import ConfigError

    with pytest.raises(ConfigError, match=r"retention\.message_days"):
        load_config(path)
