"""The durable record: every call verdict, every text, consent and opt-outs, in SQLite (WAL).

Why the order matters: a missed call is committed (``record_outcome``) before the policy
runs or anything is queued, so a crash at any later point loses no call; the outbox row
that may follow is unique per (call, kind), so replaying the same verdict never texts twice.

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
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from textback.config import PolicyConfig, default_policy
from textback.errors import TextbackError
from textback.migrations import LATEST, MIGRATIONS
from textback.outbound.policy import PolicySnapshot, number_country, number_prefix
from textback.pbx.call_start import CallStart
from textback.pbx.outcome import CallOutcome

# outbox states that count as "a text went, or is about to go" for cooldown and caps
COUNTED_STATES = ("queued", "sending", "sent", "delivered", "unconfirmed", "failed")

# see Store.unavailable: how long without a failed write before any write ends an outage
OUTAGE_QUIET_S = 60.0

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


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in _UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class BurstPause:
    """A prefix whose texts are paused after a burst of missed calls; also the staff alert
    (``alerted_at`` None until someone has told staff)."""

    id: int
    prefix: str
    did: str | None
    call_id: str
    calls: int
    window_s: float
    started_at: float
    until_at: float
    detail: str
    alerted_at: float | None


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What ``record_outcome`` did: ``new`` False for a duplicate verdict, with the stored
    verdict (``conflict`` when the duplicate disagrees with what was stored first)."""

    call_id: str
    new: bool
    stored_verdict: str
    conflict: bool = False


class Store:
    """One SQLite connection (aiosqlite), writes serialised by a lock, WAL mode.

    ``policy`` gives the burst window and pause and the prefix length the store needs to
    count a burst and open a pause (the pipeline's call to ``policy_snapshot`` carries only
    the prefix); without it the [policy] defaults apply.
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path,
                 policy: PolicyConfig | None = None) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self.policy = policy if policy is not None else default_policy()
        # the current outage, for the daemon's status file: set by the first write that
        # failed with StoreUnavailable (its time kept through the following failures), over
        # when the failed operation commits a change, or any operation does and nothing
        # failed for OUTAGE_QUIET_S (an empty commit, or a small row that still fit on a
        # full disk, proves nothing)
        self.unavailable: StoreUnavailable | None = None
        self.unavailable_since: float | None = None
        self._failed_at = 0.0
        self.errors = 0  # operations refused by a locked/full/failing store (/metrics)

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout_s: float = 5.0,
                   policy: PolicyConfig | None = None, readonly: bool = False) -> Store:
        """Open (creating parent directories and the file) and migrate to the latest schema.

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
        store = cls(conn, p, policy)
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
        StoreUnavailable after rolling back, so a failed operation leaves no trace."""
        async with self._lock:
            try:
                changes = self._conn.total_changes
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    with suppress(sqlite3.OperationalError):
                        await self._conn.execute("ROLLBACK")
                if _unavailable(exc):
                    error = StoreUnavailable(operation, exc)
                    self._note_unavailable(error)
                    raise error from exc
                raise
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
            async with self._conn.execute(sql, args) as cur:
                return list(await cur.fetchall())
        except sqlite3.OperationalError as exc:
            if _unavailable(exc):
                self.errors += 1
                raise StoreUnavailable("read", exc) from exc
            raise

    async def fetchone(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()
                       ) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    # ------------------------------------------------------------------ calls

    async def record_outcome(self, outcome: CallOutcome, decided_at: float) -> RecordResult:
        """Commit the verdict on one call (every verdict: answered and ignored too).

        Idempotent: a second verdict for the same call id changes nothing and is reported
        (``new`` False; ``conflict`` when it disagrees). A missed inbound call from a known
        number also gets its consent row, in the same transaction.
        """
        record = json.dumps(outcome.to_record(), ensure_ascii=False, default=str)
        country = number_country(outcome.caller) if (
            outcome.direction == "inbound" and outcome.caller
            and outcome.caller.startswith("+")) else None
        async with self.transaction("record_outcome") as db:
            cur = await db.execute(
                """INSERT INTO calls (call_id, pbx, direction, caller, caller_name, withheld,
                       did, callee, connected, verdict, reason, voicemail_left, ring_s,
                       started_at, ended_at, decided_at, record, country)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (call_id) DO NOTHING""",
                (outcome.call, outcome.pbx, outcome.direction, outcome.caller,
                 outcome.caller_name, int(outcome.withheld), outcome.did, outcome.callee,
                 int(outcome.connected), outcome.verdict, outcome.reason,
                 int(outcome.voicemail_left), outcome.ring_s, outcome.started_at,
                 outcome.ended_at, decided_at, record, country))
            if cur.rowcount == 0:
                async with db.execute("SELECT verdict, reason FROM calls WHERE call_id = ?",
                                      (outcome.call,)) as c:
                    row = await c.fetchone()
                stored = row["verdict"] if row else outcome.verdict
                conflict = row is not None and (row["verdict"], row["reason"]) != (
                    outcome.verdict, outcome.reason)
                return RecordResult(outcome.call, False, stored, conflict)
            if outcome.direction == "inbound" and outcome.caller and not outcome.withheld:
                at = outcome.started_at if outcome.started_at is not None else decided_at
                await db.execute(
                    "INSERT OR IGNORE INTO consent (call_id, number, did, at) VALUES (?,?,?,?)",
                    (outcome.call, outcome.caller, outcome.did, at))
        return RecordResult(outcome.call, True, outcome.verdict)

    async def record_skip(self, call_id: str, reason: str, detail: str, at: float) -> bool:
        """Store the policy's skip for a call; False if the call already has a decision.

        A ``burst`` skip (the call that completed a burst) also pauses the caller's prefix
        for ``policy.burst_pause_s`` and records the staff alert, in the same transaction:
        the pause cannot be lost between the decision and its bookkeeping.
        """
        async with self.transaction("record_skip") as db:
            cur = await db.execute(
                """UPDATE calls SET decision = 'skip', skip_reason = ?, skip_detail = ?,
                       decision_at = ? WHERE call_id = ? AND decision IS NULL""",
                (reason, detail, at, call_id))
            decided = cur.rowcount == 1
            if decided and reason == "burst":
                await self._open_burst_pause(db, call_id, detail, at)
            return decided

    async def _open_burst_pause(self, db: aiosqlite.Connection, call_id: str, detail: str,
                                at: float) -> None:
        async with db.execute("SELECT caller, did FROM calls WHERE call_id = ?",
                              (call_id,)) as c:
            row = await c.fetchone()
        if row is None or not row["caller"]:
            return
        policy = self.policy
        prefix = number_prefix(row["caller"], policy.prefix_digits)
        async with db.execute(
                "SELECT 1 FROM burst_pauses WHERE until_at > ? AND "
                "substr(?, 1, length(prefix)) = prefix", (at, row["caller"])) as c:
            if await c.fetchone() is not None:
                return  # already paused (a concurrent decision): one pause, one alert
        calls = await self._missed_from_prefix(db, prefix, at - policy.burst_window_s)
        await db.execute(
            "INSERT INTO burst_pauses (prefix, did, call_id, calls, window_s, started_at, "
            "until_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (prefix, row["did"], call_id, calls, policy.burst_window_s, at,
             at + policy.burst_pause_s, detail))

    @staticmethod
    async def _missed_from_prefix(db: aiosqlite.Connection, prefix: str, since: float) -> int:
        async with db.execute(_MISSED_FROM_PREFIX, (prefix, prefix + _TOP, since)) as c:
            row = await c.fetchone()
        return int(row[0]) if row else 0

    async def burst_pauses(self, *, active_at: float | None = None,
                           unalerted: bool = False) -> list[BurstPause]:
        """Burst pauses, oldest first: all, those active at ``active_at``, or those whose
        staff alert has not been sent."""
        where, params = [], []
        if active_at is not None:
            where.append("until_at > ? AND started_at <= ?")
            params += [active_at, active_at]
        if unalerted:
            where.append("alerted_at IS NULL")
        sql = "SELECT * FROM burst_pauses" + (
            " WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [BurstPause(**dict(r)) for r in await self.fetchall(sql, params)]

    async def mark_burst_alerted(self, pause_id: int, at: float) -> bool:
        """Staff were told about this pause; False if it was already marked."""
        async with self.transaction("mark_burst_alerted") as db:
            cur = await db.execute("UPDATE burst_pauses SET alerted_at = ? WHERE id = ? AND "
                                   "alerted_at IS NULL", (at, pause_id))
            return cur.rowcount == 1

    async def call(self, call_id: str) -> dict[str, Any] | None:
        row = await self.fetchone("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        return dict(row) if row else None

    async def undecided_calls(self) -> list[CallOutcome]:
        """Missed calls recorded but never decided (the process died in between): the
        daemon runs the policy on them again at start."""
        rows = await self.fetchall(
            "SELECT record FROM calls WHERE decision IS NULL AND verdict = 'missed' "
            "AND direction = 'inbound' ORDER BY id")
        out = []
        for row in rows:
            r = json.loads(row["record"])
            known = {k: r[k] for k in CallOutcome.__dataclass_fields__ if k in r and k != "extra"}
            out.append(CallOutcome(**known))
        return out

    # ------------------------------------------------------------------ open calls

    async def keep_open_call(self, start: CallStart, at: float) -> bool:
        """Keep (insert or update) what the tracker knows of an inbound call in progress,
        so a restarted daemon can seed its tracker with it. False, and nothing written,
        when the call's verdict is already recorded (a late update must not bring back a
        row the verdict removed)."""
        record = json.dumps(start.to_record(), ensure_ascii=False)
        async with self.transaction("keep_open_call") as db:
            cur = await db.execute(
                """INSERT INTO open_calls (call_id, pbx, started_at, updated_at, record)
                   SELECT ?, ?, ?, ?, ?
                   WHERE NOT EXISTS (SELECT 1 FROM calls WHERE call_id = ?)
                   ON CONFLICT (call_id) DO UPDATE SET updated_at = excluded.updated_at,
                       record = excluded.record""",
                (start.call, start.pbx, start.started_at, at, record, start.call))
            return cur.rowcount > 0

    async def open_calls(self, pbx: str | None = None) -> list[CallStart]:
        """The calls in progress when the daemon last stopped, oldest first (only
        ``pbx``'s when given). Rows whose verdict is recorded after all are removed, and so
        is a row that no longer reads as a ``CallStart`` (damaged): never half-used."""
        async with self.transaction("open_calls") as db:
            await db.execute("DELETE FROM open_calls WHERE call_id IN "
                             "(SELECT call_id FROM calls)")
            async with db.execute("SELECT call_id, pbx, record FROM open_calls "
                                  "ORDER BY started_at, call_id") as cur:
                rows = list(await cur.fetchall())
            out: list[CallStart] = []
            for row in rows:
                if pbx is not None and row["pbx"] != pbx:
                    continue
                try:
                    out.append(CallStart.from_record(json.loads(row["record"])))
                except (ValueError, TypeError):
                    await db.execute("DELETE FROM open_calls WHERE call_id = ?",
                                     (row["call_id"],))
        return out

    async def forget_open_call(self, call_id: str) -> bool:
        """Drop a kept call (its verdict went elsewhere); False if there was none."""
        async with self.transaction("forget_open_call") as db:
            cur = await db.execute("DELETE FROM open_calls WHERE call_id = ?", (call_id,))
            return cur.rowcount > 0

    # ------------------------------------------------------------------ policy input

    async def policy_snapshot(self, number: str, did: str | None, now: float,
                              prefix: str) -> PolicySnapshot:
        """Everything the policy needs to know about ``number`` at ``now``, as plain data.

        The hourly counts walk ``outbox_created`` (``+state`` keeps SQLite from preferring
        the state index, which would read every text ever sent). The burst count is only
        taken while no pause covers the number (a paused prefix needs no count), so a flood
        costs one indexed lookup per call once it is paused.
        """
        states = _named_states()
        country = number_country(number) if number.startswith("+") else None
        row = await self.fetchone(
            f"""SELECT
                  (SELECT opted_out FROM opt_outs WHERE number = :n) AS opted_out,
                  (SELECT max(created_at) FROM outbox WHERE number = :n AND did IS :did
                      AND state IN ({states})) AS last_text_at,
                  (SELECT count(*) FROM outbox WHERE number = :n AND created_at > :day
                      AND state IN ({states})) AS number_day,
                  (SELECT count(*) FROM outbox WHERE substr(number, 1, :plen) = :prefix
                      AND created_at > :hour AND +state IN ({states})) AS prefix_hour,
                  (SELECT count(*) FROM outbox WHERE created_at > :hour
                      AND +state IN ({states})) AS global_hour,
                  (SELECT max(coalesce(ended_at, decided_at)) FROM calls
                      WHERE (caller = :n AND direction = 'inbound' AND verdict = 'answered')
                         OR (callee = :n AND connected = 1)) AS reached_at,
                  (SELECT count(DISTINCT p.message_id) FROM message_parts p
                      JOIN messages m ON m.id = p.message_id
                      WHERE m.number = :n AND p.status = 'failed') AS failed,
                  (SELECT max(until_at) FROM burst_pauses WHERE until_at > :now
                      AND started_at <= :now
                      AND substr(:n, 1, length(prefix)) = prefix) AS paused_until,
                  CASE WHEN :country IS NULL THEN 0 ELSE
                      (SELECT count(*) FROM outbox o CROSS JOIN calls c ON c.call_id = o.call_id
                          AND c.caller = o.number
                       WHERE c.country = :country AND o.created_at > :hour
                         AND +o.state IN ({states})) END AS country_hour""",
            {"n": number, "did": did, "day": now - 86400.0, "hour": now - 3600.0, "now": now,
             "plen": len(prefix), "prefix": prefix, "country": country, **_state_params()},
        )
        assert row is not None
        burst = 0
        if row["paused_until"] is None and self.policy.burst_calls and prefix:
            counted = await self.fetchone(_MISSED_FROM_PREFIX, (
                prefix, prefix + _TOP, now - self.policy.burst_window_s))
            burst = int(counted[0]) if counted else 0
        return PolicySnapshot(
            opted_out=bool(row["opted_out"]),
            last_text_at=row["last_text_at"],
            texts_to_number_day=row["number_day"],
            texts_to_prefix_hour=row["prefix_hour"],
            texts_global_hour=row["global_hour"],
            reached_at=row["reached_at"],
            failed_deliveries=row["failed"],
            prefix_missed_window=burst,
            prefix_paused_until=row["paused_until"],
            country=country,
            texts_to_country_hour=row["country_hour"],
        )

    # ------------------------------------------------------------------ opt-outs (room)

    async def set_opt_out(self, number: str, opted_out: bool, at: float, source: str,
                          message_id: int | None = None, note: str | None = None) -> None:
        """Record an opt-out (True) or opt-in (False) and its history row."""
        async with self.transaction("set_opt_out") as db:
            await db.execute(
                """INSERT INTO opt_outs (number, opted_out, at, source_message_id, source)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (number) DO UPDATE SET opted_out = excluded.opted_out,
                       at = excluded.at, source_message_id = excluded.source_message_id,
                       source = excluded.source""",
                (number, int(opted_out), at, message_id, source))
            await db.execute(
                "INSERT INTO opt_events (number, action, at, message_id, source, note) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (number, "optout" if opted_out else "optin", at, message_id, source, note))

    async def cancel_follow_ups(self, number: str, reason: str, at: float) -> int:
        """Cancel every follow-up still scheduled for ``number`` (opt-out); how many. The
        texts already queued are the outbox's (``Outbox.cancel_for_number``)."""
        async with self.transaction("cancel_follow_ups") as db:
            cur = await db.execute(
                "UPDATE follow_ups SET state = 'cancelled', cancel_reason = ? "
                "WHERE number = ? AND state = 'scheduled'", (reason, number))
            return cur.rowcount


_TOP = "\uffff"  # sorts after any character of a number: [prefix, prefix + _TOP) is a range
# uses the partial index calls_missed_caller (caller, decided_at)
_MISSED_FROM_PREFIX = ("SELECT count(*) FROM calls WHERE verdict = 'missed' AND "
                       "direction = 'inbound' AND caller >= ? AND caller < ? AND decided_at > ?")


def _named_states() -> str:
    return ",".join(f":s{i}" for i in range(len(COUNTED_STATES)))


def _state_params() -> dict[str, str]:
    return {f"s{i}": s for i, s in enumerate(COUNTED_STATES)}
