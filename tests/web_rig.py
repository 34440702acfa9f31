"""The web app on a seeded store (tests/report_seed.py), served by aiohttp's test server,
with a logged-in client: what the web tests share."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.daemon_fakes import NOW, Clock, lab_gate
from tests.report_seed import seed
from textback.config import Config
from textback.inbound.desk import Desk
from textback.inbound.handler import InboundHandler
from textback.inbound.staff import StaffDesk
from textback.outbound.followups import FollowUps
from textback.outbound.outbox import Outbox
from textback.store import Store
from textback.web import auth
from textback.web.deps import WebDeps
from textback.web.server import make_app

USER, PASSWORD = "alice", "correct horse battery"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class WebRig:
    config: Config
    store: Store
    reader: Store
    outbox: Outbox
    followups: FollowUps
    inbound: InboundHandler
    staff: StaffDesk
    clock: Clock
    deps: WebDeps
    client: TestClient[Any, Any]
    woken: list[float]

    async def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.store.fetchall(sql, params)]

    async def conversation_id(self, number: str) -> int:
        row = await self.store.fetchone("SELECT id FROM conversations WHERE number = ?",
                                        (number,))
        assert row is not None
        return int(row["id"])

    async def csrf(self, path: str = "/") -> str:
        page = await self.client.get(path)
        m = CSRF_RE.search(await page.text())
        assert m is not None, "no CSRF token on the page"
        return m.group(1)

    async def post(self, path: str, data: dict[str, str], *, csrf: str | None = None,
                   follow: bool = True) -> Any:
        token = csrf if csrf is not None else await self.csrf()
        return await self.client.post(path, data={**data, "csrf": token},
                                      allow_redirects=follow)


async def login(client: TestClient[Any, Any], user: str = USER,
                password: str = PASSWORD) -> Any:
    page = await client.get("/login")
    m = CSRF_RE.search(await page.text())
    assert m is not None
    return await client.post("/login", data={"user": user, "password": password,
                                             "csrf": m.group(1)}, allow_redirects=False)


@asynccontextmanager
async def web_rig(tmp: Path, *, logged_in: bool = True, **web: Any) -> AsyncIterator[WebRig]:
    config = await seed(tmp)
    if web:
        from dataclasses import replace
        config = replace(config, web=replace(config.web, **web))
    store = await Store.open(config.store.path)
    reader = await Store.open(config.store.path, readonly=True)
    clock = Clock(NOW + 1000)
    outbox = Outbox(store, config=lab_gate())
    woken: list[float] = []
    followups = FollowUps(store, outbox, config, clock=clock)
    staff = StaffDesk(store, outbox, config)
    inbound = InboundHandler(store, outbox, config, clock=clock, followups=followups,
                             staff=staff)
    await auth.add_user(store, USER, PASSWORD, clock())
    deps = WebDeps(config=config, store=store, reader=reader, outbox=outbox,
                   desk=Desk(store, followups), reviews=staff.reviews,
                   limiter=auth.LoginLimiter(), clock=clock,
                   wake=lambda: woken.append(clock()), live_poll_s=0.05)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(deps)))
    await client.start_server()
    try:
        if logged_in:
            answer = await login(client)
            assert answer.status == 303, await answer.text()
        yield WebRig(config, store, reader, outbox, followups, inbound, staff, clock, deps,
                     client, woken)
    finally:
        deps.stopping.set()
        await client.close()
        await reader.close()
        await store.close()
