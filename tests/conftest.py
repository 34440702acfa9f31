"""Shared test fixtures: where the real captures and modem data live (../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
ASTERISK_TRACES = SHARED / "traces" / "asterisk-22"
FREESWITCH_TRACES = SHARED / "traces" / "freeswitch-1.10"
MODEM_DATA = SHARED / "modem-data"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"real data folder {SHARED} is missing: tests read ../shared beside the repo")
    return SHARED
