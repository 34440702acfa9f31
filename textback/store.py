"""The durable record's connection: one SQLite file (WAL), its transactions and migrations.

Nothing here knows a table. Each table has exactly one writer module, which owns its SQL
and the promise that goes with it (tests/test_store_writers.py checks it): calls, consent
and burst pauses ``outbound.call_record``; the outbox and message parts
``outbound.outbox``; the conversation log ``outbound.messages``; follow-ups
``outbound.followups``; calls in progress ``outbound.open_calls``; opt-outs
``inbound.optout``; conversations ``inbound.conversations``; the inbound PDU journal
``inbound.journal``; possible opt-outs ``inbound.possible_optout``; callbacks
``inbound.callback``; the staff mail queue ``inbound.staff_mail``. Anyone may read.

Failures: "database is locked" (another process held the write lock beyond the busy
timeout), "database or disk is full", I/O errors and a read-only file all raise
:class:`StoreUnavailable`. Nothing is written partially (each write is one transaction).
How the caller must hold work meanwhile: keep the ``CallOutcome`` (it is plain, immutable
data) in memory, in arrival order, and retry the same call with backoff until it succeeds;
do not run the policy or send for a call that is not yet recorded. Retrying is safe because
every write here is idempotent (duplicate verdicts and duplicate enqueues change nothing).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from textback.errors import TextbackError
from textback.logfmt import log
from textback.migrations import LATEST, MIGRATIONS

# see Store.unavailable: how long without a failed write before any write ends an outage
OUTAGE_QUIET_S = 60.0
# see Store.checkpoints: at most this often the daemon copies the WAL into the database file
CHECKPOINT_EVERY_S = 1.0

logger = logging.getLogger("textback.store")

_UNAVAILABLE = ("locked", "busy", "full", "disk i/o", "unable to open", "readonly",
                "read-only")


class StoreUnavailable(TextbackError):
    """The database cannot be written right now; the operation did nothing. Retry later.

    ``kind`` is "locked" (another writer; usually clears by itself), "full" (disk or
    max_page_count; needs space) or "io" (the file or disk).
    """

    def __init__(self, operation: str, cause: BaseException) -> None:
        text = str(cause).lower()
        self.kind = "locked" if ("locked" in text or "busy" in text) else \
            "full" if ("full" in text or "no space" in text) else "io"
        self.operation = operation
        self.cause = str(cause)
        super().__init__(f"store unavailable during {operation}: {cause}")

    def admin_line(self, path: Path | str) -> str:
        """One line for the admin: ``store: <path>: disk full (<cause>) during <operation>``."""
        return (f"store: {path}: {describe_unavailable(self.kind)} ({self.cause}) "
                f"during {self.operation}")


class StoreError(RuntimeError):
    """The store cannot be used at all: not a textback store, damaged, or made by a newer
    textback. Its text is one line for the admin (``store: <path> ...``); nothing was
    changed. Unlike :class:`StoreUnavailable`, waiting does not help: a person must act."""


_KIND_WORDS = {"full": "disk full", "locked": "locked by another process",
               "io": "cannot be written (disk full, read-only or failing?)"}


def describe_unavailable(kind: str) -> str:
    """Words for the admin for a :attr:`StoreUnavailable.kind` ("disk full", ...)."""
    return _KIND_WORDS.get(kind, kind)


T = TypeVar("T")


def _in_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """:meth:`Store.run`'s trip: BEGIN IMMEDIATE, the body, COMMIT; ROLLBACK on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.OperationalError):
                conn.execute("ROLLBACK")
        raise
    return result


async def _on_db_thread(conn: aiosqlite.Connection,
                        fn: Callable[[sqlite3.Connection, Any], T], arg: Any) -> T:
    """Run ``fn(<the sqlite3 connection>, arg)`` on aiosqlite's database thread, the one
    thread that may touch that connection, in one trip.

    aiosqlite has no public call for this: its ``_execute`` is how each of its own methods
    does it (its maintainer agreed that running a transaction's statements on the thread
    saves the back and forth: omnilib/aiosqlite#19). It is used here and nowhere else, and
    tests/test_store_run.py fails at once if it changes.
    """
    return await conn._execute(lambda: fn(conn._conn, arg))


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in _UNAVAILABLE)


class Store:
    """One SQLite connection (aiosqlite), writes serialised by a lock, WAL mode."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        # the current outage, for the daemon's status file: set by the first write that
        # failed with StoreUnavailable (its time kept through the following failures), over
        # when the failed operation commits a change, or any operation does and nothing
        # failed for OUTAGE_QUIET_S (an empty commit, or a small row that still fit on a
        # full disk, proves nothing)
        self.unavailable: StoreUnavailable | None = None
        self.unavailable_since: float | None = None
        self._failed_at = 0.0
        self.errors = 0  # operations refused by a locked/full/failing store (/metrics)
        self.background_checkpoints = False  # see checkpoints()
        self.checkpoint_errors = 0
        self._written = asyncio.Event()  # a transaction changed something since it was read

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout_s: float = 5.0,
                   readonly: bool = False, background_checkpoints: bool = False) -> Store:
        """Open (creating parent directories and the file) and migrate to the latest schema.

        ``background_checkpoints`` (the daemon): no commit of this connection copies the WAL
        into the database file; the caller runs :meth:`checkpoints` instead.

        ``readonly`` (``textback status``): open the existing file with SQLite's
        ``mode=ro``; nothing is created, migrated or written (an older schema is left as
        it is: :meth:`schema_version` says which). Raises :class:`StoreError` for a file
        that is not a textback store, is damaged, or is newer than this textback, and
        :class:`StoreUnavailable` when it cannot be opened or written (disk full, locked,
        permissions).
        """
        p = Path(path)
        memory = str(p) == ":memory:"
        try:
            if not memory and not readonly:
                p.parent.mkdir(parents=True, exist_ok=True)
            if readonly:
                # No -wal file: no writer is running and everything is in the main file;
                # immutable keeps SQLite from creating -wal/-shm files here (owned by
                # whoever runs `textback status`, they would lock the daemon out later).
                # With one, a writer may be running: read through its WAL, read-only.
                quiet = not Path(f"{p}-wal").exists()
                conn = await aiosqlite.connect(
                    f"{p.absolute().as_uri()}?mode=ro{'&immutable=1' if quiet else ''}",
                    uri=True, isolation_level=None)
            else:
                conn = await aiosqlite.connect(str(p), isolation_level=None)
        except OSError as exc:  # the directory cannot be created
            raise StoreUnavailable("open", exc) from exc
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable("open", exc) from exc
        conn.row_factory = aiosqlite.Row
        store = cls(conn, p)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            version = await store.schema_version()
            if version > LATEST:
                raise StoreError(f"store: {p} has schema version {version}, newer than this "
                                 f"textback ({LATEST}): upgrade textback")
            if version == 0 and await store.fetchone("SELECT 1 FROM sqlite_master"):
                # every textback schema step bumps user_version with its tables
                raise StoreError(f"store: {p} is not a textback store or is corrupt "
                                 "(tables of another program, schema version 0)")
            if readonly:
                await conn.execute("PRAGMA query_only = ON")
                # reading the schema proves it is a database; the tables prove it is ours
                await store.fetchall("SELECT name FROM sqlite_master LIMIT 1")
            else:
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA synchronous = NORMAL")
                await conn.execute("PRAGMA foreign_keys = ON")
                await store.migrate()
                if background_checkpoints and not memory:
                    await conn.execute("PRAGMA wal_autocheckpoint = 0")
                    store.background_checkpoints = True
            if version and not await store._has_calls_table():
                raise StoreError(f"store: {p} is not a textback store or is corrupt "
                                 "(no calls table)")
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and not _unavailable(exc):
                raise StoreError(f"store: {p} is not a textback store or is corrupt "
                                 f"({exc})") from exc
            if isinstance(exc, sqlite3.OperationalError):
                raise StoreUnavailable("open", exc) from exc
            raise
        return store

    async def _has_calls_table(self) -> bool:
        row = await self.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'calls'")
        return row is not None

    async def close(self) -> None:
        await self._conn.close()

    async def checkpoints(self, every_s: float = CHECKPOINT_EVERY_S) -> None:
        """Copy the WAL into the database file from a connection of its own, at most every
        ``every_s`` and only after writes; runs until cancelled (a daemon task).

        Why: by default the commit that takes the WAL past 1000 pages also checkpoints it,
        with an fsync, on the writer's own thread: every few hundred calls one missed
        caller's decide or claim waited 3-5 ms behind it (the p99 of bench/latency.py). A
        PASSIVE checkpoint from another connection never takes the write lock and never
        waits for readers, so the write path never waits for it; it copies what no reader
        still needs and the next one copies the rest. The WAL holds at most about
        ``every_s`` of writes. Errors (a full disk) are logged and tried again later: the
        WAL keeps every commit meanwhile, so nothing is lost.
        """
        if not self.background_checkpoints:
            return
        conn: aiosqlite.Connection | None = None
        try:
            while True:
                await self._written.wait()
                self._written.clear()
                try:
                    if conn is None:
                        conn = await aiosqlite.connect(str(self.path), isolation_level=None)
                    await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    self.checkpoint_errors += 1
                    log(logger, logging.WARNING, "store_checkpoint_failed",
                        path=str(self.path), error=str(exc), retry_in_s=every_s)
                    self._written.set()
                await asyncio.sleep(every_s)
        finally:
            if conn is not None:
                await conn.close()

    @property
    def connection(self) -> aiosqlite.Connection:
        """The raw connection, for read-only queries (status, report)."""
        return self._conn

    async def schema_version(self) -> int:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> int:
        """Run every migration not yet applied; returns the version reached."""
        version = await self.schema_version()
        if version > LATEST:
            raise StoreError(f"store: {self.path} has schema version {version}, newer than "
                             f"this textback ({LATEST}): upgrade textback")
        for number in range(version + 1, LATEST + 1):
            script = MIGRATIONS[number - 1]
            try:
                await self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
            except sqlite3.OperationalError as exc:
                if self._conn.in_transaction:
                    await self._conn.rollback()
                if _unavailable(exc):
                    raise StoreUnavailable(f"migration {number}", exc) from exc
                raise
        return LATEST

    @asynccontextmanager
    async def transaction(self, operation: str) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (BEGIN IMMEDIATE); maps lock/full/IO errors to
        StoreUnavailable after rolling back, so a failed operation leaves no trace.

        Every statement of the body is its own trip to the database thread; a body on the
        way of a text (record, decide, queue, claim) is written for :meth:`run` instead."""
        async with self._lock:
            changes = self._conn.total_changes
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    with suppress(sqlite3.OperationalError):
                        await self._conn.execute("ROLLBACK")
                error = self._failed(operation, exc)
                if error is None:
                    raise
                raise error from exc
            self._committed(operation, changes)

    async def run(self, operation: str, body: Callable[[sqlite3.Connection], T]) -> T:
        """One write transaction whose body is a plain function of the ``sqlite3``
        connection, run with its BEGIN and COMMIT in ONE trip to the database thread.

        Why: aiosqlite sends each statement to its thread and back (a queue put, a thread
        wake-up and a loop wake-up, 0.05-1 ms each on a small box), while the statements
        themselves cost microseconds. The decide transaction of a missed call took ten trips
        and the dispatcher's claim three, so the thread handoffs, not SQLite, were the
        latency from a hang-up to the modem. The body runs on the database thread: it must
        only use the connection it is given and plain data (no event loop, no awaits); what
        it returns is handed back. Errors are mapped as :meth:`transaction` maps them, after
        the rollback; the same lock serialises both kinds of transaction.
        """
        async with self._lock:
            changes = self._conn.total_changes
            try:
                result = await _on_db_thread(self._conn, _in_transaction, body)
            except BaseException as exc:
                error = self._failed(operation, exc)
                if error is None:
                    raise
                raise error from exc
            self._committed(operation, changes)
            return result

    def _failed(self, operation: str, exc: BaseException) -> StoreUnavailable | None:
        """The StoreUnavailable a failed transaction raises for a locked/full/failing store
        (noted for the status file); None: the error is not the store's, raise it as it is."""
        if not _unavailable(exc):
            return None
        error = StoreUnavailable(operation, exc)
        self._note_unavailable(error)
        return error

    def _committed(self, operation: str, changes: int) -> None:
        if self._conn.total_changes > changes:
            self._written.set()
        if self.unavailable is not None and self._conn.total_changes > changes and (
                operation == self.unavailable.operation
                or time.time() - self._failed_at > OUTAGE_QUIET_S):
            self.unavailable = self.unavailable_since = None

    def _note_unavailable(self, error: StoreUnavailable) -> None:
        self.errors += 1
        self._failed_at = time.time()
        if self.unavailable is None or self.unavailable_since is None:
            self.unavailable_since = self._failed_at
        self.unavailable = error

    async def fetchall(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
                       ) -> list[aiosqlite.Row]:
        """A read query; lock/IO errors raise StoreUnavailable."""
        args = params if isinstance(params, Mapping) else tuple(params)
        try:
            # one trip to the database thread (execute + fetch + close would be three)
            return list(await self._conn.execute_fetchall(sql, args))
        except sqlite3.OperationalError as exc:
            if _unavailable(exc):
                self.errors += 1
                raise StoreUnavailable("read", exc) from exc
            raise

    async def fetchone(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
                       ) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None
