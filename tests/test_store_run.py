"""Store.run: a write transaction as one trip to the database thread; background checkpoints.

Why these exist (issue 13): from a hang-up to the modem, the thread handoffs of aiosqlite
(one per statement, plus BEGIN and COMMIT) and the WAL checkpoint that every thousandth
page's commit ran inline were the latency, not SQLite. These tests hold the two promises
that fixed it, and that a failed body still leaves no trace.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from tests.daemon_fakes import CALLER, DID, NOW, Clock, lab_gate, make_config, outcome
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.store import Store, StoreUnavailable


@contextmanager
def counted_trips() -> Iterator[list[str]]:
    """Every function aiosqlite sends to its database thread, by name."""
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kw)

    aiosqlite.Connection._execute = counting  # type: ignore[method-assign]
    try:
        yield trips
    finally:
        aiosqlite.Connection._execute = real  # type: ignore[method-assign]


async def scratch(store: Store) -> None:
    await store.run("scratch", lambda db: db.execute(
        "CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, v BLOB)"))


async def test_a_run_is_one_trip_on_the_database_thread(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "textback.db")
    try:
        await scratch(store)
        seen: list[int] = []

        def body(db: sqlite3.Connection) -> int:
            seen.append(threading.get_ident())
            for i in range(5):
                db.execute("INSERT INTO scratch (v) VALUES (?)", (str(i),))
            return int(db.execute("SELECT count(*) FROM scratch").fetchone()[0])

        with counted_trips() as trips:
            assert await store.run("five", body) == 5
        assert len(trips) == 1  # BEGIN, five inserts, a read and COMMIT: one trip
        # the thread aiosqlite runs the connection on, not the event loop's
        assert seen == [store.connection._thread.ident]
        assert seen[0] != threading.get_ident()
        assert not store.connection.in_transaction
    finally:
        await store.close()


async def test_a_failing_body_rolls_back_everything_and_raises_as_it_is(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "textback.db")
    try:
        await scratch(store)

        def body(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO scratch (v) VALUES ('lost')")
            raise ValueError("a bug in the body")

        with pytest.raises(ValueError, match="a bug in the body") as caught:
            await store.run("broken", body)
        assert caught.value.__cause__ is None  # not chained to itself or wrapped
        assert await store.fetchall("SELECT * FROM scratch") == []
        assert store.unavailable is None  # a bug is not a store outage
        assert await store.run("after", lambda db: db.execute(
            "INSERT INTO scratch (v) VALUES ('kept')").rowcount) == 1
    finally:
        await store.close()


async def test_a_locked_store_is_unavailable_and_the_outage_ends_with_a_write(
        tmp_path: Path) -> None:
    path = tmp_path / "textback.db"
    store = await Store.open(path, busy_timeout_s=0.05)
    try:
        await scratch(store)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(StoreUnavailable) as caught:
                await store.run("insert", lambda db: db.execute(
                    "INSERT INTO scratch (v) VALUES ('x')"))
            assert caught.value.kind == "locked" and caught.value.operation == "insert"
            assert store.unavailable is caught.value and store.errors == 1
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert not store.connection.in_transaction
        await store.run("insert", lambda db: db.execute("INSERT INTO scratch (v) VALUES ('x')"))
        assert store.unavailable is None  # the failed operation committed a change
    finally:
        await store.close()


async def test_deciding_a_missed_call_is_one_trip_and_its_claim_another(
        tmp_path: Path) -> None:
    """The path from a verdict to the modem: record, policy snapshot, gate, insert,
    decision and follow-ups in ONE trip; the dispatcher's claim in one more."""
    store = await Store.open(tmp_path / "textback.db")
    try:
        outbox = Outbox(store, config=lab_gate())
        pipe = CallPipeline(store, outbox, make_config(tmp_path), clock=Clock())
        with counted_trips() as trips:
            handled = await pipe.handle(outcome("1795395183.0"))
        assert handled.action == "queued"
        assert len(trips) == 1, trips
        with counted_trips() as trips:
            item = await outbox.claim_next(NOW + 3600)
        assert item is not None and item.number == CALLER and item.did == DID
        assert len(trips) == 1, trips
    finally:
        await store.close()


async def write_pages(store: Store, pages: int) -> None:
    """About ``pages`` 4 KiB pages, in transactions of 100."""
    await scratch(store)
    for _ in range(pages // 100):
        await store.run("fill", lambda db: db.executemany(
            "INSERT INTO scratch (v) VALUES (?)", [(b"\x5a" * 4000,)] * 100))


def wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


@pytest.mark.parametrize("background", [False, True])
async def test_with_background_checkpoints_no_commit_checkpoints(
        tmp_path: Path, background: bool) -> None:
    """2500 pages written: SQLite's own checkpoint (at 1000 pages, inside a commit) keeps
    the WAL near 4 MB and copies the pages into the database file; with background
    checkpoints no commit does, so all 10 MB are still in the WAL."""
    path = tmp_path / "textback.db"
    store = await Store.open(path, background_checkpoints=background)
    try:
        await write_pages(store, 2500)
        if background:
            assert wal_bytes(path) > 9_000_000 and path.stat().st_size < 1_000_000
        else:
            assert wal_bytes(path) < 6_000_000 and path.stat().st_size > 3_000_000
    finally:
        await store.close()


@asynccontextmanager
async def checkpointing(path: Path) -> AsyncIterator[Store]:
    """A daemon's store (background checkpoints) with its checkpointer running, fast."""
    store = await Store.open(path, background_checkpoints=True)
    task = asyncio.create_task(store.checkpoints(every_s=0.01))
    try:
        yield store
        assert not task.done()  # the daemon's task lives through what happened
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.close()


async def database_file_reaches(path: Path, size: int, timeout_s: float = 10.0) -> int:
    """The database file's size once it holds ``size`` bytes (the WAL copied into it)."""
    deadline = time.monotonic() + timeout_s
    while path.stat().st_size < size and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return path.stat().st_size


async def test_the_checkpointer_copies_the_wal_into_the_database_file(
        tmp_path: Path) -> None:
    path = tmp_path / "textback.db"
    async with checkpointing(path) as store:
        await write_pages(store, 2500)
        assert await database_file_reaches(path, 9_000_000) > 9_000_000
        # and the writer's next transaction starts the WAL again from its beginning
        assert await store.run("after", lambda db: db.execute(
            "INSERT INTO scratch (v) VALUES ('x')").rowcount) == 1
        assert store.checkpoint_errors == 0


async def test_a_store_without_background_checkpoints_runs_no_checkpointer(
        tmp_path: Path) -> None:
    """The CLI and the web app keep SQLite's own checkpoints: nothing to run for them."""
    store = await Store.open(tmp_path / "textback.db")
    try:
        await asyncio.wait_for(store.checkpoints(every_s=0.01), 1)
    finally:
        await store.close()


async def test_a_failing_checkpoint_is_logged_and_tried_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """The checkpointer's connection cannot be opened at first (no file descriptor left,
    say): one warning per try, the daemon's task lives on, and the WAL is copied once it
    can be; the commits meanwhile stay in the WAL, so nothing is lost."""
    real_connect = aiosqlite.connect
    refusals = [sqlite3.OperationalError("unable to open database file")] * 2

    def connect(*args: Any, **kw: Any) -> Any:
        if refusals:
            raise refusals.pop()
        return real_connect(*args, **kw)

    path = tmp_path / "textback.db"
    async with checkpointing(path) as store:
        monkeypatch.setattr(aiosqlite, "connect", connect)  # the store itself is open
        await write_pages(store, 1500)
        assert await database_file_reaches(path, 5_000_000) > 5_000_000
        assert store.checkpoint_errors == 2
        assert sum("store_checkpoint_failed" in r.getMessage() for r in caplog.records) == 2
        rows = await store.fetchone("SELECT count(*) FROM scratch")
        assert rows is not None and rows[0] == 1500
