"""`textback report` on a seeded store: table, csv, json, --since/--did, clear errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from tests.daemon_fakes import DID
from tests.report_seed import seed, write_config
from textback.cli import main


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    asyncio.run(seed(tmp_path))
    return tmp_path / "textback.toml"


def test_json(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--config", str(config_path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["did"], r["reason"]): r for r in out["rows"]}
    assert rows[(DID, "all")]["missed"] == 5 and rows[(DID, "busy")]["opted_out"] == 1
    assert out["since"] is None and out["window_s"] == 7 * 86400


def test_csv_has_a_column_per_skip_reason(config_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--config", str(config_path), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    noanswer = next(r for r in rows if r["reason"] == "noanswer")
    assert noanswer["skipped:cooldown"] == "1" and noanswer["skipped:withheld"] == "1"
    assert noanswer["median_text_s"] == "5.0"
    busy = next(r for r in rows if r["reason"] == "busy")
    assert busy["skipped"] == "0" and busy["skipped:cooldown"] == "0"


def test_table(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["DID", "REASON", "MISSED", "TEXTED"]
    assert any(line.split()[:4] == [DID, "all", "5", "3"] for line in lines)
    assert f"{DID} noanswer: cooldown 1, withheld 1" in out


def test_since_and_did_filters(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--config", str(config_path), "--format", "json",
                 "--since", "2099-01-01"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == []
    assert main(["report", "--config", str(config_path), "--format", "json",
                 "--did", "(555) 987-0000"]) == 0  # national form, [trunks] default_region
    out = json.loads(capsys.readouterr().out)
    assert out["did"] == DID and out["rows"]


@pytest.mark.parametrize("args, message", [
    (["--since", "last week"], "--since: 'last week' is not a date"),
    (["--did", "abc"], "--did: 'abc' is not a phone number"),
])
def test_bad_arguments(config_path: Path, capsys: pytest.CaptureFixture[str],
                       args: list[str], message: str) -> None:
    assert main(["report", "--config", str(config_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_no_store_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = write_config(tmp_path)
    assert main(["report", "--config", str(path)]) == 1
    assert "no store at" in capsys.readouterr().err


def test_json_holds_the_dashboard(config_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The web dashboard's numbers (textback.report.dashboard) are in the JSON report."""
    assert main(["report", "--config", str(config_path), "--format", "json"]) == 0
    board = json.loads(capsys.readouterr().out)["dashboard"]
    assert board["funnel"] == {"missed": 5, "texted": 3, "replied": 2, "booked": 0}
    assert len(board["reply_rate_by_hour"]) == 24 and len(board["reply_rate_by_weekday"]) == 7
    assert sum(d["missed"] for d in board["missed_per_day"]) == 5
