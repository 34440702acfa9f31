"""`textback user add|list|remove`: the password is asked twice on the terminal (never an
argument), only its argon2 hash is stored, every change is audited; `textback demo`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.report_seed import write_config
from textback.cli import build_parser, main
from textback.cli.demo import command
from textback.store import Store


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path, _ = write_config(tmp_path)
    return path


def _typed(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    prompts: list[str] = []
    queue = list(answers)

    def fake(prompt: str = "") -> str:
        prompts.append(prompt)
        return queue.pop(0)

    monkeypatch.setattr(getpass, "getpass", fake)
    return prompts


async def _rows(db: Path, sql: str) -> list[dict[str, Any]]:
    store = await Store.open(db)
    try:
        return [dict(r) for r in await store.fetchall(sql)]
    finally:
        await store.close()


def test_add_asks_twice_stores_a_hash_and_audits(config_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    prompts = _typed(monkeypatch, "front desk 2027", "front desk 2027")
    assert main(["user", "add", "maria", "--config", str(config_path)]) == 0
    assert prompts == ["password for maria: ", "again: "]
    assert "user maria added" in capsys.readouterr().out
    db = config_path.parent / "textback.db"
    (user,) = asyncio.run(_rows(db, "SELECT * FROM web_users"))
    assert user["name"] == "maria" and user["password_hash"].startswith("$argon2id$")
    assert "front desk 2027" not in user["password_hash"]
    (entry,) = asyncio.run(_rows(db, "SELECT * FROM audit"))
    assert entry["action"] == "user-add" and entry["target"] == "maria"
    assert entry["actor"].startswith("cli:")
    assert main(["user", "list", "--config", str(config_path)]) == 0
    assert capsys.readouterr().out.startswith("maria  (added ")
    assert main(["user", "remove", "maria", "--config", str(config_path)]) == 0
    assert asyncio.run(_rows(db, "SELECT * FROM web_users")) == []
    assert [r["action"] for r in asyncio.run(_rows(db, "SELECT action FROM audit"))] == [
        "user-add", "user-remove"]


def test_add_refuses_two_different_or_short_passwords(config_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    _typed(monkeypatch, "front desk 2027", "front desk 2028")
    assert main(["user", "add", "maria", "--config", str(config_path)]) == 1
    assert "the two passwords differ" in capsys.readouterr().err
    _typed(monkeypatch, "short", "short")
    assert main(["user", "add", "maria", "--config", str(config_path)]) == 1
    assert "too short" in capsys.readouterr().err
    assert main(["user", "remove", "nobody", "--config", str(config_path)]) == 1
    assert main(["user", "add", "<x>", "--config", str(config_path)]) == 1
    assert "not a user name" in capsys.readouterr().err


def test_the_password_is_never_an_argument(config_path: Path) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["user", "add", "maria", "s3cret-password"])


def test_demo_command_runs_the_demo_module() -> None:
    args = argparse.Namespace(serve=True, speed=2.0)
    assert command(args) == [sys.executable, "-m", "textback.demo", "--speed", "2.0",
                             "--serve"]
    parsed = build_parser().parse_args(["demo", "--serve"])
    assert parsed.serve and parsed.func.__module__ == "textback.cli.demo"
