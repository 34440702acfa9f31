"""Inbound calls in progress, kept in the store so they survive a restart of the daemon.

Why: "a missed call seen is recorded before anything else". A verdict is recorded when a
call ends, but a call that was ringing when the daemon was killed would otherwise come back
from the PBX's CoreShowChannels with only its channel's *current* context and extension,
judged internal or without a DID, and never be texted. The listener reports each inbound
call's facts as it classifies it (``CallStart``); ``OpenCallKeeper`` writes them to the
store (table ``open_calls``; recording the verdict removes the row), and at start
``load`` returns them for the listener's ``seed``, before it connects.

The tracker is sans-IO and calls back synchronously; the write happens in a task. Writes
reach the store in the order they were reported (the store's lock is first come, first
served), and a write that loses the race with the call's verdict writes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from textback.logfmt import log
from textback.pbx.call_start import CallStart
from textback.store import Store, StoreUnavailable

logger = logging.getLogger("textback.outbound.open_calls")


class OpenCallKeeper:
    """``report(start)`` from the listener's callback; ``load()`` at start."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.kept = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def load(self, pbx: str) -> list[CallStart]:
        """The calls that were in progress when the daemon last stopped (``pbx``'s)."""
        starts = await self.store.open_calls(pbx)
        for s in starts:
            log(logger, logging.INFO, "call_restored", call=s.call, started_at=s.started_at,
                why="in progress when the daemon stopped")
        return starts

    def report(self, start: CallStart) -> None:
        """The tracker's ``on_call_started``: keep ``start`` (never blocks)."""
        task = asyncio.get_running_loop().create_task(self._keep(start))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the writes already reported (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _keep(self, start: CallStart) -> None:
        try:
            await self.store.keep_open_call(start, self.clock())
            self.kept += 1
        except Exception as exc:  # a task nobody awaits: log it, never let it vanish
            # the call itself is not lost: its verdict is recorded when it ends, unless
            # the daemon also dies before that
            self.failed += 1
            why = str(exc) if isinstance(exc, StoreUnavailable) else \
                f"{type(exc).__name__}: {exc}"
            log(logger, logging.WARNING, "open_call_not_kept", call=start.call, error=why)
