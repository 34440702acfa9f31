"""The shipped ``[trunks] settle_s`` covers what the captures show, with its margin.

bench/settle_gap.py measures, on every capture in ../shared/traces (Asterisk 22 lab and
live, FreeSWITCH 1.10), the largest gap between a call's last hangup and the last event
that names it (and the last one that changes its record). The default must be at least
the script's choice (2x the first, 10x the second, up to 10 ms), or a late event could be
lost; and every
capture must still replay to the same verdicts with it (tests/test_asterisk_replay.py,
tests/test_freeswitch_replay.py run with the default).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from textback.config import parse_config
from textback.pbx.stream import DEFAULT_SETTLE_S, TrackerConfig
from textback.testing.lab_config import lab_config_toml

REPO = Path(__file__).resolve().parents[1]


def test_default_settle_covers_the_measured_gap_with_its_margin() -> None:
    run = subprocess.run([sys.executable, str(REPO / "bench" / "settle_gap.py")],
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(result["families"]) == {"asterisk-22", "asterisk-22-live", "freeswitch-1.10"}
    assert all(f["calls"] > 0 for f in result["families"].values())
    assert result["settle_s_default"] <= DEFAULT_SETTLE_S
    assert result["max_changing_gap_ms"] / 1000 * result["margin"] <= DEFAULT_SETTLE_S
    trailing_s = result["max_trailing_gap_ms"] / 1000
    assert trailing_s * result["trailing_margin"] <= DEFAULT_SETTLE_S
    assert TrackerConfig().settle_s == DEFAULT_SETTLE_S


def test_a_config_without_settle_s_uses_the_measured_default(tmp_path: Path) -> None:
    config = parse_config(lab_config_toml(), tmp_path / "textback.toml",
                          check_permissions=False)
    assert config.trunks.settle_s == DEFAULT_SETTLE_S
