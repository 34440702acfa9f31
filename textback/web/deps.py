"""What the web app's handlers use, handed over by the daemon (or a test).

Writes go through the owners' APIs on the daemon's own store connection (``Outbox.enqueue``
for a reply, :class:`~textback.inbound.desk.Desk` for take-over and outcomes,
:class:`~textback.inbound.possible_optout.PossibleOptOuts` for a review); every read goes
through ``reader``, a second, read-only connection, so a page or a live-update client never
queues behind the send path on the writer's connection (and vice versa).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textback.config import Config
    from textback.inbound.desk import Desk
    from textback.inbound.possible_optout import PossibleOptOuts
    from textback.outbound.outbox import Outbox
    from textback.store import Store
    from textback.web.auth import LoginLimiter

from textback.web.budget import RequestBudget


@dataclass
class WebDeps:
    config: Config
    store: Store  # the daemon's connection: writes (through the owners' APIs)
    reader: Store  # read-only connection: every page and the live updates
    outbox: Outbox
    desk: Desk
    reviews: PossibleOptOuts | None
    limiter: LoginLimiter
    clock: Callable[[], float]
    wake: Callable[[], None] = lambda: None
    status_file: Path | None = None  # the daemon's status file (health page)
    daemon: Any = None  # for textback.web.metrics, when present
    live_poll_s: float = 1.0  # how often a live-update client's view is checked
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # (period, line) -> (computed at, the dashboard's HTML): see views.DASHBOARD_CACHE_S
    dashboards: dict[tuple[str, str | None], tuple[float, Any]] = field(default_factory=dict)
    budget: RequestBudget = field(default_factory=lambda: RequestBudget())
    streams: dict[str, int] = field(default_factory=dict)  # open live streams per session

    def line(self, did: str | None) -> str:
        """How staff know the line: its business name (the DID when not configured)."""
        conf = self.config.did(did)
        return conf.business if conf is not None and conf.business else (did or "?")

    def zone(self, did: str | None) -> str:
        """The business's time zone for ``did`` (the [[did]]'s hours, else [hours])."""
        conf = self.config.did(did)
        return conf.hours.timezone if conf is not None else self.config.hours.timezone
