"""`textback conversations` on a seeded store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.daemon_fakes import DID, NOW, lab_gate
from tests.report_seed import A, B, seed, write_config
from textback.cli import main
from textback.inbound.handler import InboundHandler
from textback.outbound.outbox import Outbox
from textback.store import Store


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    asyncio.run(seed(tmp_path))
    return tmp_path / "textback.toml"


def test_lists_code_state_and_latest_messages(config_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conversations", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    heads = [line for line in out if not line.startswith("    ")]
    assert [h.split()[1] for h in heads] == [B, A]
    assert "open, opted out" in heads[0] and f"-> {DID}" in heads[0]
    assert any(line.strip().startswith("<") and "STOP" in line for line in out)
    assert any(line.strip().startswith(">") and "[delivered]" in line for line in out)


def test_number_filter_and_json(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conversations", "--config", str(config_path), "--number", A, "--json"]) == 0
    (conv,) = json.loads(capsys.readouterr().out)
    assert conv["number"] == A and conv["opted_out"] is False
    assert [m["direction"] for m in conv["messages"]] == ["out", "in"]
    assert main(["conversations", "--config", str(config_path), "--number", "12ab"]) == 2
    assert "is not a phone number" in capsys.readouterr().err


def test_hostile_reply_is_shown_escaped(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path, config = write_config(tmp_path)

    async def receive() -> None:
        store = await Store.open(config.store.path)
        handler = InboundHandler(store, Outbox(store, config=lab_gate()), config, clock=lambda: NOW)
        await handler.receive(number=A, text="hi\x1b[2J\rgone\u202e", did=DID, via="sip",
                              at=NOW)
        await store.close()

    asyncio.run(receive())
    assert main(["conversations", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "hi\\u001b[2J\\u000dgone\\u202e" in out


def test_times_are_business_time_not_the_hosts(config_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff texts show the DID's business time; so does this listing, whatever the host's
    TZ (issue 16 item 13). NOW = 2027-01-15 08:00 UTC = 03:00 in America/New_York."""
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert main(["conversations", "--config", str(config_path), "--number", A]) == 0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    head = capsys.readouterr().out.splitlines()[0]
    assert "(opened 2027-01-15 03:01 EST," in head, head  # opened by the reply at +65 s
