"""A webhook receiver on loopback for the tests: an aiohttp server that records every
request, answers each event id with a scripted sequence of statuses (then 200), and can
hold requests open (a slow hook). Tests await what it saw, never a sleep."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# a status in a script that holds the request until ``release`` is set, then answers 503
HOLD = -1


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    script: list[int] = field(default_factory=list)  # statuses per event id, then 200
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _seen: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status == 200]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("Textback-Event-Id", "")
        n = self._seen.get(event_id, 0)
        self._seen[event_id] = n + 1
        status = self.script[n] if n < len(self.script) else 200
        if status == HOLD:
            self.holding += 1
            self._changed.set()
            await self.release.wait()
            self.holding -= 1
            status = 503  # this attempt never succeeded (its client may be gone)
        self.requests.append(Received(dict(request.headers), body, status))
        self._changed.set()
        return web.Response(status=status, text="ok" if status == 200 else "no")

    async def wait_for(self, cond: Callable[[], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def receiver(path: str = "/hook", script: list[int] | None = None
                   ) -> AsyncIterator[Receiver]:
    rx = Receiver(script=list(script or []))
    app = web.Application()
    app.router.add_post(path, rx.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)  # not our log
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rx.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield rx
    finally:
        rx.release.set()
        await runner.cleanup()


# bound and never listening: connections are refused, and the port stays ours for the
# whole run (a port merely found free and closed again could be handed to the next
# server a test starts, which then receives what was meant to be refused)
_REFUSING: list[socket.socket] = []


def refused_url(path: str = "/hook") -> str:
    """A loopback URL that refuses connections."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _REFUSING.append(s)
    return f"http://127.0.0.1:{s.getsockname()[1]}{path}"


async def wait_until(cond: Callable[[], Any], timeout: float = 30.0) -> None:
    """For conditions with no event to await (a row in the store): check, yield, again."""
    deadline = time.monotonic() + timeout
    while not await cond() if asyncio.iscoroutinefunction(cond) else not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)
