"""The daemon runs the web app when ``[web] enabled`` and stops it on shutdown; a web app
that cannot listen is logged and texting goes on without it."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.web_rig import CSRF_RE
from textback.config import parse_config
from textback.daemon import Daemon
from textback.store import Store
from textback.testing.fake_ami import FakeAmi
from textback.testing.lab_config import lab_config_toml
from textback.testing.modem_simulator import ModemSimulator
from textback.web import auth

SECRET = "web-daemon-secret"


async def _daemon(tmp: Path, port: int) -> tuple[Daemon, asyncio.Task[int], Any, Any]:
    ami = FakeAmi(events=[], secret=SECRET)
    _, ami_port = await ami.start("127.0.0.1", 0)
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-webd", time_scale=0.0)
    await sim.start()
    text = lab_config_toml(ami_port=ami_port, modem_port=sim.port, store=tmp / "textback.db",
                           pbx={"secret": SECRET}, web={"enabled": True})
    config = parse_config(text, tmp / "textback.toml", check_permissions=False)
    config = dataclasses.replace(config, web=dataclasses.replace(config.web, port=port))
    daemon = Daemon(config, modem_poll_s=0.1)
    return daemon, asyncio.create_task(daemon.run()), ami, sim


async def test_web_app_starts_with_the_daemon_and_stops_with_it(tmp_path: Path) -> None:
    daemon, task, ami, sim = await _daemon(tmp_path, 0)
    try:
        async with asyncio.timeout(15):
            while daemon.web is None or not daemon.web.port:
                await asyncio.sleep(0.05)
        url = daemon.web.url
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/", allow_redirects=False) as answer:
                assert answer.status == 303 and answer.headers["Location"] == "/login"
            async with http.get(url + "/login") as answer:
                assert answer.status == 200 and "Log in" in await answer.text()
            events = await http.get(url + "/static/app.js")
            assert events.status == 200
        # the health page: the daemon's status file, as `textback status` reads it
        store = await Store.open(tmp_path / "textback.db")
        try:
            await auth.add_user(store, "admin", "a long password", daemon.clock())
        finally:
            await store.close()
        async with asyncio.timeout(15):
            while not (tmp_path / "textback.db.status.json").exists() or \
                    '"sim": "READY"' not in (tmp_path / "textback.db.status.json").read_text():
                await asyncio.sleep(0.1)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            form = await (await http.get(url + "/login")).text()
            token = CSRF_RE.search(form)
            assert token is not None
            await http.post(url + "/login", data={"user": "admin", "csrf": token.group(1),
                                                  "password": "a long password"})
            page = await (await http.get(url + "/health")).text()
        assert "TEXTBACK OK" in page and "modem:a" in page and "READY" in page
        assert " dBm" in page and "connected" in page
    finally:
        daemon.stop()
        async with asyncio.timeout(15):
            assert await task == 0
        await ami.close()
        await sim.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=2)


async def test_a_port_in_use_is_logged_and_texting_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    daemon, task, ami, sim = await _daemon(tmp_path, busy.getsockname()[1])
    try:
        async with asyncio.timeout(15):
            while "web_not_started" not in caplog.text:
                await asyncio.sleep(0.05)
        assert daemon.web is None and not task.done()
    finally:
        busy.close()
        daemon.stop()
        async with asyncio.timeout(15):
            assert await task == 0
        await ami.close()
        await sim.stop()


def test_metrics_routes_are_added_when_the_module_is_there(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """The hook for textback/web/metrics.py (/metrics, /healthz: another module)."""
    import types

    from aiohttp import web

    from textback.web.server import PUBLIC, add_metrics

    calls: list[object] = []
    fake = types.ModuleType("textback.web.metrics")
    fake.add_routes = lambda app, daemon: calls.append(daemon)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "textback.web.metrics", fake)
    add_metrics(web.Application(), None)
    assert calls == []  # no daemon (tests of the pages alone): nothing to report on
    daemon = object()
    add_metrics(web.Application(), daemon)
    assert calls == [daemon]
    assert "/metrics" in PUBLIC and "/healthz" in PUBLIC
