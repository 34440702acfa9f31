"""Storage faults against the daemon subprocess: its SQLite store locked by another process,
and the disk under it full, while missed calls arrive.

What must hold (textback/store.py, textback/pipeline.py): the error is logged clearly
(``store_unavailable`` with ``kind=locked`` / ``kind=full`` and SQLite's own words), the
verdicts wait in memory in order, nothing decided is dropped, work resumes by itself when
the fault clears, and every missed call is texted exactly once. "Recovery" is from the
fault clearing to the network accepting the last held text.

The full disk is real: the store lives on a small tmpfs mounted for the test, filled to the
last byte by a filler file, then the filler is removed. Mounting needs root (this machine's
tests run as root); elsewhere that test is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import SECRET, Rig, logged, record, rig, until


def _calls_arrived(r: Rig) -> bool:
    """Every call of the burst has happened at the fake PBX (so the daemon has had them)."""
    return bool(r.ami.finished.is_set())


def _check(r: Rig, fault: str, recovery: float | None, kind: str, **extra: object) -> None:
    t = r.tally()
    calls, outbox = r.store()
    errors = [x for x in r.logs if "store_unavailable" in x]
    record(fault, 1, int(recovery is not None and not t.lost), len(t.lost),
           len(t.duplicated), recovery, calls=len(r.callers), seen=len(calls),
           texted_once=t.texted_once, store_errors_logged=len(errors), **extra)
    assert errors, "no store_unavailable error was logged"
    assert any(f"kind={kind}" in x for x in errors), errors[:3]
    assert t.duplicated == [] and t.unexpected == []
    assert t.lost == [] and t.texted_once == len(r.callers), [
        (c["caller"], c["verdict"], c["decision"], c["skip_reason"]) for c in calls
    ] + [(o["number"], o["state"]) for o in outbox] + r.logs[-30:]
    assert len(calls) == len(r.callers)
    assert not any(SECRET in line for line in r.logs)
    assert recovery is not None and recovery <= 30.0


async def test_locked_database_holds_verdicts_and_resumes(tmp_path: Path, soak: bool) -> None:
    """Another process holds BEGIN EXCLUSIVE on the store (longer than the daemon's 5 s
    busy timeout) while 3 missed calls arrive and end."""
    hold_s = 30.0 if soak else 6.0
    async with rig(tmp_path, 3, lead_s=1.5) as r:
        assert await until(lambda: logged(r.logs, "event=started"), 20) is not None, \
            "".join(r.logs[-20:])
        other = sqlite3.connect(r.db, timeout=10, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            t_lock = time.monotonic()
            assert await until(lambda: _calls_arrived(r) and logged(
                r.logs, "store_unavailable", "kind=locked"), hold_s + 20) is not None, \
                "".join(r.logs[-20:])
            await asyncio.sleep(max(0.0, hold_s - (time.monotonic() - t_lock)))
            assert r.sim.accepted == []  # nothing went before its call was recorded
        finally:
            other.execute("ROLLBACK")
            other.close()
        t_free = time.monotonic()
        await until(r.all_texted, 40, 0.1)
        await r.settle(10)
        last = max((a.at for a in r.sim.accepted), default=None)
        recovery = None if last is None or not r.all_texted() else last - t_free
    line = next(x for x in r.logs if "store_unavailable" in x)
    assert "database is locked" in line, line
    _check(r, f"store locked by another process for {hold_s:g} s", recovery, "locked",
           hold_s=hold_s)


@contextlib.contextmanager
def _small_fs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a small tmpfs, and mounting one needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; the bytes written."""
    n = 0
    chunk = b"\0" * 4096
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for size in (512, 64, 1):  # the last scraps too
            with contextlib.suppress(OSError):
                while True:
                    n += f.write(b"\0" * size)
    return n


async def test_disk_full_holds_verdicts_and_resumes(tmp_path: Path, soak: bool) -> None:
    """The store's filesystem fills up (every byte taken by another file) while 3 missed
    calls arrive; then the file is removed."""
    full_s = 30.0 if soak else 3.0
    with _small_fs(tmp_path / "small-fs", "2m") as fs:
        store = fs / "textback.db"

        def on_small_fs(config: Path) -> None:
            text = config.read_text()
            old = str(config.parent / "textback.db")
            config.write_text(text.replace(f'path = "{old}"', f'path = "{store}"', 1))

        async with rig(tmp_path, 3, lead_s=1.5, configure=on_small_fs) as r:
            r.tmp = fs  # the rig reads the store where the config put it
            assert await until(lambda: logged(r.logs, "event=started"), 20) is not None, \
                "".join(r.logs[-20:])
            filler = fs / "filler"
            filled = _fill(filler)
            t_full = time.monotonic()
            try:
                seen = await until(lambda: _calls_arrived(r) and logged(
                    r.logs, "store_unavailable", "kind=full"), full_s + 20)
                assert seen is not None, "".join(r.logs[-20:])
                await asyncio.sleep(max(0.0, full_s - (time.monotonic() - t_full)))
                assert r.sim.accepted == []
            finally:
                filler.unlink()
            t_free = time.monotonic()
            await until(r.all_texted, 40, 0.1)
            await r.settle(10)
            last = max((a.at for a in r.sim.accepted), default=None)
            recovery = None if last is None or not r.all_texted() else last - t_free
        line = next(x for x in r.logs if "store_unavailable" in x)
        assert "database or disk is full" in line, line
        _check(r, f"disk full under the store for {full_s:g} s", recovery, "full",
               full_s=full_s, filler_bytes=filled)
