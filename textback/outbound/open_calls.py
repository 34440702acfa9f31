"""Inbound calls in progress, kept in the store so they survive a restart of the daemon.

Why: "a missed call seen is recorded before anything else". A verdict is recorded when a
call ends, but a call that was ringing when the daemon was killed would otherwise come back
from the PBX's CoreShowChannels with only its channel's *current* context and extension,
judged internal or without a DID, and never be texted. The listener reports each inbound
call's facts as it classifies it (``CallStart``); ``OpenCallKeeper`` writes them to the
store (table ``open_calls``, written only here; recording the verdict removes the row), and at start
``load`` returns them for the listener's ``seed``, before it connects.

The tracker is sans-IO and calls back synchronously; the write happens in a task. Writes
reach the store in the order they were reported (the store's lock is first come, first
served), and a write that loses the race with the call's verdict writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from textback.logfmt import log
from textback.pbx.call_start import CallStart
from textback.store import Store, StoreUnavailable

logger = logging.getLogger("textback.outbound.open_calls")
# calls remembered as ended (see OpenCallKeeper.ended): far more than end within a tick
ENDED_MEMORY = 4096


class OpenCallKeeper:
    """``report(start)`` from the listener's callback; ``load()`` at start."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.kept = 0
        self.failed = 0
        self.skipped = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        # calls whose verdict is on its way to the store (bounded, oldest forgotten first)
        self._ended: OrderedDict[str, None] = OrderedDict()

    async def load(self, pbx: str) -> list[CallStart]:
        """The calls that were in progress when the daemon last stopped (``pbx``'s)."""
        starts = await load_open_calls(self.store, pbx)
        for s in starts:
            log(logger, logging.INFO, "call_restored", call=s.call, started_at=s.started_at,
                why="in progress when the daemon stopped")
        return starts

    def report(self, start: CallStart) -> None:
        """The tracker's ``on_call_started``: keep ``start`` (never blocks)."""
        task = asyncio.get_running_loop().create_task(self._keep(start))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def ended(self, call_id: str) -> None:
        """The call's verdict was handed to the pipeline: a progress update still waiting
        to be written is dropped. Its verdict's transaction removes the row anyway; the
        update would only queue a store write in front of that verdict (the tracker
        reports a call's last progress in the same tick that ends it). The rows written
        while it rang stay until the verdict commits, so a crash in between loses no call."""
        self._ended[call_id] = None
        if len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)

    async def drain(self) -> None:
        """Wait for the writes already reported (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _keep(self, start: CallStart) -> None:
        if start.call in self._ended:
            self.skipped += 1
            return
        try:
            await keep_open_call(self.store, start, self.clock())
            self.kept += 1
        except Exception as exc:  # a task nobody awaits: log it, never let it vanish
            # the call itself is not lost: its verdict is recorded when it ends, unless
            # the daemon also dies before that
            self.failed += 1
            why = str(exc) if isinstance(exc, StoreUnavailable) else \
                f"{type(exc).__name__}: {exc}"
            log(logger, logging.WARNING, "open_call_not_kept", call=start.call, error=why)


# ------------------------------------------------------------------ the open_calls table

async def keep_open_call(store: Store, start: CallStart, at: float) -> bool:
    """Keep (insert or update) what the tracker knows of an inbound call in progress,
    so a restarted daemon can seed its tracker with it. False, and nothing written,
    when the call's verdict is already recorded (a late update must not bring back a
    row the verdict removed)."""
    record = json.dumps(start.to_record(), ensure_ascii=False)
    return await store.run("keep_open_call", lambda db: db.execute(
        """INSERT INTO open_calls (call_id, pbx, started_at, updated_at, record)
           SELECT ?, ?, ?, ?, ?
           WHERE NOT EXISTS (SELECT 1 FROM calls WHERE call_id = ?)
           ON CONFLICT (call_id) DO UPDATE SET updated_at = excluded.updated_at,
               record = excluded.record""",
        (start.call, start.pbx, start.started_at, at, record, start.call)).rowcount > 0)


async def load_open_calls(store: Store, pbx: str | None = None) -> list[CallStart]:
    """The calls in progress when the daemon last stopped, oldest first (only
    ``pbx``'s when given). Rows whose verdict is recorded after all are removed, and so
    is a row that no longer reads as a ``CallStart`` (damaged): never half-used."""
    def load(db: sqlite3.Connection) -> list[CallStart]:
        db.execute("DELETE FROM open_calls WHERE call_id IN (SELECT call_id FROM calls)")
        out: list[CallStart] = []
        for row in db.execute("SELECT call_id, pbx, record FROM open_calls "
                              "ORDER BY started_at, call_id").fetchall():
            if pbx is not None and row["pbx"] != pbx:
                continue
            try:
                out.append(CallStart.from_record(json.loads(row["record"])))
            except (ValueError, TypeError):
                db.execute("DELETE FROM open_calls WHERE call_id = ?", (row["call_id"],))
        return out
    return await store.run("open_calls", load)


async def forget_open_call(store: Store, call_id: str) -> bool:
    """Drop a kept call (its verdict went elsewhere); False if there was none."""
    return await store.run("forget_open_call", lambda db: db.execute(
        "DELETE FROM open_calls WHERE call_id = ?", (call_id,)).rowcount > 0)
