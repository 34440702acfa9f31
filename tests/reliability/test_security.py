"""Security checks on the real daemon process: loopback-only listeners, the PBX secret in
no log line, a config readable by others refused with the chmod that fixes it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from tests.reliability.harness import LOOPBACK, REPO, SECRET, record, run_once, write_config

AGI_TOKEN = "reliability-agi-token-5c1d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_daemon_listens_on_loopback_only_and_never_logs_the_secret(
        tmp_path: Path) -> None:
    agi = {"enabled": True, "port": free_port(), "token": AGI_TOKEN}
    run = await run_once(tmp_path, 3, config={"agi": agi})
    assert run.status in (0, -15), "".join(run.logs[-20:])
    assert run.listeners, "the FastAGI listener should be open"
    assert all(addr in LOOPBACK for addr, _ in run.listeners), run.listeners
    assert not any(SECRET in line or AGI_TOKEN in line for line in run.logs)
    assert sum(run.sent.values()) == 3
    record("security: listeners loopback-only, secret never logged", 1, 1, 0, 0, None,
           listeners=len(run.listeners))


async def test_config_readable_by_others_is_refused_naming_chmod_600(tmp_path: Path) -> None:
    config = write_config(tmp_path, 5038, "/dev/null", mode=0o644)
    assert os.stat(config).st_mode & 0o777 == 0o644
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "textback", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO))
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    text = (out + err).decode()
    assert "chmod 600" in text
    assert SECRET not in text
    assert not (tmp_path / "textback.db").exists()
