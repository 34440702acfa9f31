"""`textback optout add|remove|list` on a seeded store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_fakes import DID, NOW, lab_gate
from tests.report_seed import B, missed, seed, write_config
from textback.cli import main
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.store import Store


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    asyncio.run(seed(tmp_path))
    return tmp_path / "textback.toml"


def test_list_shows_since_source_and_message(config_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optout", "list", "--config", str(config_path)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{B}  since ") and 'keyword "STOP"' in line


async def _queue_text_and_follow_up(path: Path) -> None:
    from textback.config import load_config

    config = load_config(path)
    store = await Store.open(config.store.path)
    clock = lambda: NOW + 5000  # noqa: E731
    pipe = CallPipeline(store, Outbox(store, config=lab_gate()), config, clock=clock)
    other = "+15551230077"
    handled = await pipe.handle(missed("q1", other, "noanswer", NOW + 5000))
    assert handled.action == "queued"
    async with store.transaction("test") as db:
        await db.execute("INSERT INTO follow_ups (call_id, touch, number, did, due_at, state) "
                         "VALUES ('q1', 2, ?, ?, ?, 'scheduled')", (other, DID, NOW + 9000))
    await store.close()


async def _rows(path: Path, sql: str) -> list[dict[str, Any]]:
    store = await Store.open(path.parent / "textback.db")
    try:
        return [dict(r) for r in await store.fetchall(sql)]
    finally:
        await store.close()


def test_add_cancels_queued_texts_and_follow_ups(config_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_queue_text_and_follow_up(config_path))
    assert main(["optout", "add", "(555) 123-0077", "--note", "asked by phone",
                 "--config", str(config_path)]) == 0
    assert "1 queued text(s) and 1 follow-up(s) cancelled" in capsys.readouterr().out
    (row,) = asyncio.run(_rows(config_path, "SELECT * FROM outbox WHERE call_id = 'q1'"))
    assert (row["state"], row["cancel_reason"]) == ("cancelled", "opted-out")
    (fu,) = asyncio.run(_rows(config_path, "SELECT * FROM follow_ups"))
    assert fu["state"] == "cancelled"
    assert main(["optout", "add", "+15551230077", "--config", str(config_path)]) == 0
    assert "already on the do-not-text list" in capsys.readouterr().out
    assert main(["optout", "list", "--config", str(config_path)]) == 0
    lines = capsys.readouterr().out.splitlines()  # oldest first: the CLI's clock is real time
    assert len(lines) == 2
    (added,) = [line for line in lines if line.startswith("+15551230077  since ")]
    assert added.endswith("  cli (asked by phone)")


def test_remove_and_history(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optout", "remove", B, "--config", str(config_path)]) == 0
    assert "removed" in capsys.readouterr().out
    assert main(["optout", "remove", B, "--config", str(config_path)]) == 0
    assert "is not on the do-not-text list" in capsys.readouterr().out
    assert main(["optout", "list", B, "--config", str(config_path)]) == 0
    history = {h.split()[0]: h for h in capsys.readouterr().out.splitlines()}
    assert set(history) == {"optout", "optin"}
    assert 'keyword "STOP"' in history["optout"] and history["optin"].endswith("cli")
    assert main(["optout", "list", "--config", str(config_path)]) == 0
    assert capsys.readouterr().out.strip() == "no numbers opted out"



@pytest.mark.parametrize("argv, message", [
    (["optout", "add"], "NUMBER is required"),
    (["optout", "remove", "+1 (555) abc"], "is not a phone number"),
    (["optout", "add", "\x1b[2J12"], "is not a phone number"),
])
def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                   message: str) -> None:
    path, _ = write_config(tmp_path)
    assert main([*argv, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "\x1b" not in err
