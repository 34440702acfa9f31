"""One loop timer armed for the moment the next settling call becomes final.

Why: a tracker knows exactly when each ended call's settle window closes (and when an open
call expires): ``next_due()``. Ticking the tracker on a fixed step (it was once a second)
added up to a step of delay to every text on top of the settle window; a timer armed for
the earliest due time makes finality event-driven: the call is decided when its window
closes, and an idle link costs no wake-ups at all. One handle is enough for any number of
calls: when it fires the client advances the stream (every call due by then is decided)
and arms it again for the next due time.

``rearm()`` is called after anything that may have changed the due time (bytes received,
a resync, a fire); it only moves the timer earlier, never later, so a call whose window
is the earliest is never delayed by a later one. A stale early fire (the call came back to
life, or was decided meanwhile) just finds nothing due and re-arms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# a due time still reported after the stream was advanced past it is retried this late
NO_PROGRESS_DELAY_S = 0.05


class DueTimer:
    """The live client's settle timer: ``fire`` runs at ``next_due()`` on ``clock``."""

    def __init__(self, next_due: Callable[[], float | None], clock: Callable[[], float],
                 fire: Callable[[], None]) -> None:
        self._next_due = next_due
        self._clock = clock
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        # the due time the armed handle is for, on ``clock`` (None: not armed)
        self.armed_for: float | None = None
        self.fired = 0
        self._fired_at = float("-inf")

    def rearm(self) -> None:
        """Arm for the earliest due time, if that is earlier than what is armed."""
        due = self._next_due()
        if due is None:
            return
        if self._handle is not None and self.armed_for is not None \
                and self.armed_for <= due:
            return
        self.cancel()
        loop = asyncio.get_running_loop()
        self.armed_for = due
        delay = due - self._clock()
        if due <= self._fired_at:
            # the stream was advanced past this due time and still names it: never spin
            delay = max(delay, NO_PROGRESS_DELAY_S)
        self._handle = loop.call_later(max(0.0, delay), self._run)

    def _run(self) -> None:
        self._handle = None
        self.armed_for = None
        self.fired += 1
        self._fired_at = self._clock()
        self._fire()
        self.rearm()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self.armed_for = None
