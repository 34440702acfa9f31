"""/metrics and /healthz, served from a test app (aiohttp.test_utils) built around a daemon
whose parts are the real ones where they count (store, pipeline, dispatcher, inbound,
webhook hub) and fakes where hardware would be (senders, modem supervisor, PBX link)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_fakes import CALLER, DID, NOW, Clock, FakeSender, lab_gate, make_config, outcome
from textback.daemon import Daemon
from textback.inbound.handler import InboundHandler
from textback.modem.status import ModemInfo
from textback.modem.supervisor import Health
from textback.outbound.dispatcher import Dispatcher
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.store import Store, StoreUnavailable
from textback.web.metrics import add_routes

FAMILIES = {
    "textback_calls", "textback_texts", "textback_send_latency_seconds",
    "textback_outbox_depth", "textback_modem_up", "textback_modem_signal_dbm",
    "textback_modem_registered", "textback_modem_registration", "textback_sender_up",
    "textback_pbx_up", "textback_pbx_reconnects", "textback_inbound_texts",
    "textback_opted_out_numbers", "textback_opt_events", "textback_store_errors",
    "textback_store_up", "textback_webhook_deliveries", "textback_staff_notifications",
}


class FakeSupervisor:
    def __init__(self, state: str = "ready") -> None:
        self.state = state

    def health(self) -> Health:
        info = ModemInfo(port="/dev/ttyUSB0", signal_csq=20, signal_dbm=-73,
                         registration="registered (home)", registered=True)
        return Health("a", "/dev/ttyUSB0", self.state, info, None, NOW, 0, 0)


class FakeLink:
    def __init__(self) -> None:
        self.logged_in = asyncio.Event()
        self.reconnects = 2


class Office:
    def __init__(self, daemon: Daemon, store: Store, clock: Clock) -> None:
        config = daemon.config
        self.outbox = Outbox(store, config=lab_gate())
        self.modem, self.sip = FakeSender("modem:a"), FakeSender("sip")
        daemon.store = store
        daemon.hooks.store = store
        daemon.senders = {"modem:a": self.modem, "sip": self.sip}
        daemon.supervisors = {"modem:a": FakeSupervisor()}
        daemon.listener = FakeLink()
        self.dispatcher = Dispatcher(self.outbox, daemon.senders, clock=clock)
        self.pipeline = CallPipeline(store, self.outbox, config, clock=clock)
        self.inbound = InboundHandler(store, self.outbox, config, clock=clock)
        self.dispatcher.hooks = self.pipeline.hooks = self.inbound.hooks = daemon.hooks

    async def send_all(self) -> None:
        await self.dispatcher.pump()
        while self.dispatcher._tasks:
            await asyncio.wait(set(self.dispatcher._tasks))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Daemon, Office]]:
    clock = Clock()
    config = make_config(tmp_path)
    daemon = Daemon(config, clock=clock)
    store = await Store.open(tmp_path / "textback.db")
    office = Office(daemon, store, clock)
    app = web.Application()
    add_routes(app, daemon)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, daemon, office
    finally:
        await client.close()
        await store.close()


def samples(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_metrics_parse_and_hold_every_family_with_the_stores_counts(
        served: tuple[TestClient[Any, Any], Daemon, Office]) -> None:
    client, daemon, office = served
    clock = office.pipeline.clock
    assert isinstance(clock, Clock)
    await office.pipeline.handle(outcome("call-1"))           # missed, texted
    await office.pipeline.handle(outcome("call-2", verdict="answered", reason="answered",
                                         caller="+15551230003"))
    clock.t = NOW + 12.5  # the text leaves 12.5 s after the hang-up
    await office.send_all()
    for text in ("Tuesday works", "STOP"):
        await office.inbound.receive(number=CALLER, text=text, did=DID, via="modem:a",
                                     at=clock.t)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    text = await resp.text()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert names >= FAMILIES, FAMILIES - names
    s = samples(text)
    assert s["textback_calls_total"][(("reason", "noanswer"), ("verdict", "missed"))] == 1
    assert s["textback_calls_total"][(("reason", "answered"), ("verdict", "answered"))] == 1
    assert s["textback_texts"][(("kind", "textback"), ("state", "sent"))] == 1
    assert daemon.store is not None
    queued = await daemon.store.fetchall("SELECT kind FROM outbox WHERE state = 'queued'")
    assert sorted(r["kind"] for r in queued) == ["optout-confirm", "staff-forward"]
    assert s["textback_outbox_depth"][()] == 2
    assert s["textback_send_latency_seconds_count"][()] == 1
    assert s["textback_send_latency_seconds_bucket"][(("le", "12.5"),)] == 1
    assert s["textback_send_latency_seconds_bucket"][(("le", "10.0"),)] == 0
    assert s["textback_modem_up"][(("modem", "modem:a"),)] == 1
    assert s["textback_modem_signal_dbm"][(("modem", "modem:a"),)] == -73
    assert s["textback_modem_registration"][(("modem", "modem:a"),
                                             ("registration", "registered (home)"))] == 1
    assert s["textback_pbx_up"][(("pbx", "asterisk"),)] == 0
    assert s["textback_pbx_reconnects_total"][(("pbx", "asterisk"),)] == 2
    assert s["textback_inbound_texts_total"][(("class", "none"),)] == 1
    assert s["textback_inbound_texts_total"][(("class", "optout"),)] == 1
    assert s["textback_opted_out_numbers"][()] == 1
    assert s["textback_opt_events_total"][(("action", "optout"),)] == 1
    assert s["textback_store_errors_total"][()] == 0
    assert s["textback_store_up"][()] == 1
    assert s["textback_sender_up"][(("sender", "sip"),)] == 1


async def test_healthz_is_200_only_with_the_pbx_link_and_a_sender_up(
        served: tuple[TestClient[Any, Any], Daemon, Office]) -> None:
    client, daemon, office = served
    resp = await client.get("/healthz")  # the PBX link is not logged in
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable" and body["pbx"] == {"type": "asterisk",
                                                               "up": False}
    assert body["down"] == ["pbx"]
    daemon.listener.logged_in.set()
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok" and body["senders"] == {"modem:a": True, "sip": True}
    office.modem.up = False
    resp = await client.get("/healthz")
    assert resp.status == 200  # one sender is enough
    assert (await resp.json())["down"] == ["sender modem:a"]
    office.sip.up = False
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["senders_up"] == 0 and body["down"] == ["sender modem:a", "sender sip"]


async def test_a_store_outage_shows_in_the_metrics_not_as_a_failed_scrape(
        served: tuple[TestClient[Any, Any], Daemon, Office]) -> None:
    client, daemon, _office = served
    store = daemon.store
    assert store is not None

    async def failing(sql: str, params: Any = ()) -> Any:
        raise StoreUnavailable("read", sqlite3.OperationalError("disk I/O error"))
    store.fetchall = failing  # type: ignore[method-assign]
    resp = await client.get("/metrics")
    assert resp.status == 200
    s = samples(await resp.text())
    assert s["textback_store_up"][()] == 0
    assert s["textback_modem_up"][(("modem", "modem:a"),)] == 1
