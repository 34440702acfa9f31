"""Shared by bench scripts: merge one script's figures into bench/results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def merge_results(key: str, figures: dict[str, Any]) -> None:
    """Read-modify-write results.json so each script owns only its own key."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = figures
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)
