"""Staff notifications through Apprise: the durable staff e-mail queue carries them too (one
row per URL, same retries), e-mail works exactly as before, and a URL (it holds a token) is
never stored or logged. Delivered to a real HTTP receiver on loopback speaking Apprise's
``json://`` scheme."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from tests.daemon_fakes import CALLER, DID, NOW, Clock, config_toml, lab_gate, opened
from textback.config import ConfigError, EmailConfig, parse_config
from textback.inbound.handler import InboundHandler
from textback.inbound.notify import notify_urls
from textback.inbound.staff import Mailer, StaffDesk
from textback.inbound.staff_mail import MailQueue
from textback.outbound.outbox import Outbox
from textback.store import Store

TOKEN = "tk_3f9a0c1d2e"


@dataclass
class Channel:
    """An Apprise json:// endpoint: records each notification, answers ``script`` first."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    got: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        status = self.script.pop(0) if self.script else 200
        self.statuses.append(status)
        if status == 200:
            self.got.append(await request.json())
        return web.Response(status=status)


@asynccontextmanager
async def channels(n: int) -> AsyncIterator[list[Channel]]:
    app = web.Application()
    made = [Channel() for _ in range(n)]
    for i, ch in enumerate(made):
        app.router.add_post(f"/notify/{i}/{TOKEN}", ch.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)  # not our log
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for i, ch in enumerate(made):
        ch.url = f"json://127.0.0.1:{port}/notify/{i}/{TOKEN}"
    try:
        yield made
    finally:
        await runner.cleanup()


class Mta:
    accepted: ClassVar[list[EmailMessage]] = []

    def __init__(self, host: str, port: int, timeout: float) -> None:
        pass

    def __enter__(self) -> Mta:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send_message(self, msg: EmailMessage) -> None:
        Mta.accepted.append(msg)


@pytest.fixture(autouse=True)
def fresh_mta() -> None:
    Mta.accepted = []


def desk(store: Store, tmp: Path, urls: list[str], clock: Clock,
         email: tuple[str, ...] = ("desk@acme.example",)) -> tuple[InboundHandler, MailQueue]:
    text = config_toml(tmp, staff={"email": list(email), "notify": urls})
    config = parse_config(text, tmp / "textback.toml", check_permissions=False)
    mailer = Mailer(EmailConfig("127.0.0.1", 2525, "pbx@acme.example"),
                    smtp_factory=Mta)  # type: ignore[arg-type]
    mail = MailQueue(store, mailer, clock=clock, notify_urls=notify_urls(config))
    outbox = Outbox(store, config=lab_gate())
    staff = StaffDesk(store, outbox, config, mailer=mailer, mail=mail)
    return InboundHandler(store, outbox, config, clock=clock, staff=staff), mail


async def rows(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in await store.fetchall("SELECT * FROM staff_mail ORDER BY id")]


async def test_a_reply_goes_to_every_apprise_channel_and_email_as_before(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    async with channels(2) as (ntfy, chat), opened(tmp_path) as store:
        inbound, mail = desk(store, tmp_path, [ntfy.url, chat.url], clock)
        await inbound.receive(number=CALLER, text="Can you come Tuesday?", did=DID,
                              via="modem:a", at=NOW)
        queued = await rows(store)
        assert [r["channel"] for r in queued] == ["email", "apprise", "apprise"]
        assert queued[0]["recipients"] == "desk@acme.example"
        assert all(TOKEN not in r["recipients"] for r in queued)
        assert await mail.send_due() == 3
        for ch in (ntfy, chat):
            (note,) = ch.got
            assert note["title"] == "Reply from +1 555-123-0001 to Acme Plumbing"
            assert "Can you come Tuesday?" in note["message"]
        (email,) = Mta.accepted
        assert email["Subject"] == "Reply from +1 555-123-0001 to Acme Plumbing"
        assert email["Message-ID"].startswith(f"<textback-staff-{queued[0]['id']}-")
        assert [r["state"] for r in await rows(store)] == ["sent"] * 3
        assert "schemes=json,json" in caplog.text
        assert TOKEN not in caplog.text


async def test_a_refusing_channel_is_retried_alone_with_backoff(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    async with channels(2) as (down, up), opened(tmp_path) as store:
        down.script = [500]
        inbound, mail = desk(store, tmp_path, [down.url, up.url], clock, email=())
        await inbound.receive(number=CALLER, text="Call me please", did=DID, via="modem:a",
                              at=NOW)
        assert await mail.send_due() == 1
        failed, sent = await rows(store)
        assert sent["state"] == "sent" and failed["state"] == "queued"
        assert failed["last_error"] == "json: the service did not take the notification"
        assert failed["next_attempt_at"] == NOW + 30.0
        assert await mail.send_due() == 0  # not due yet
        clock.t = NOW + 30.0
        assert await mail.send_due() == 1
        assert [r["state"] for r in await rows(store)] == ["sent", "sent"]
        assert len(up.got) == 1 and len(down.got) == 1 and down.statuses == [500, 200]
        assert "notify_failed" in caplog.text and TOKEN not in caplog.text


async def test_a_url_gone_from_the_config_is_given_up(tmp_path: Path) -> None:
    clock = Clock()
    async with channels(1) as (ch,), opened(tmp_path) as store:
        inbound, mail = desk(store, tmp_path, [ch.url], clock, email=())
        await inbound.receive(number=CALLER, text="hello", did=DID, via="modem:a", at=NOW)
        mail.notify_urls = {}  # the admin removed it and restarted
        assert await mail.send_due() == 0
        (row,) = await rows(store)
        assert row["state"] == "failed" and "no longer" in row["last_error"]
        assert ch.got == []


async def test_an_unknown_scheme_fails_clearly(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        inbound, mail = desk(store, tmp_path, [f"nosuchservice://{TOKEN}@x/y"], clock,
                             email=())
        await inbound.receive(number=CALLER, text="hello", did=DID, via="modem:a", at=NOW)
        assert await mail.send_due() == 0
        (row,) = await rows(store)
        assert row["state"] == "queued"
        assert row["last_error"].startswith("nosuchservice: not a URL Apprise can use")
        assert TOKEN not in row["last_error"]


def test_config_checks_notify_urls_without_showing_them(tmp_path: Path) -> None:
    text = config_toml(tmp_path, staff={"notify": ["ntfy://ntfy.example/desk",
                                                   f"not a url {TOKEN}"]})
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "t.toml", check_permissions=False)
    assert "did[1].staff.notify: notify[2]: not an Apprise URL" in str(err.value)
    assert TOKEN not in str(err.value)
    ok = config_toml(tmp_path, staff={"notify": [f"ntfy://{TOKEN}@ntfy.example/desk"]})
    with pytest.raises(ConfigError, match=r"did\[1\]\.staff\.notify.*chmod 600"):
        parse_config(ok, tmp_path / "t.toml", file_mode=0o100644)
    config = parse_config(ok, tmp_path / "t.toml", file_mode=0o100600)
    assert TOKEN not in repr(config.dids[0].staff)


async def test_status_counts_notifications_apart_from_email(tmp_path: Path) -> None:
    from textback.cli.status import gather

    clock = Clock()
    async with channels(1) as (ch,), opened(tmp_path) as store:
        ch.script = [500]
        inbound, mail = desk(store, tmp_path, [ch.url], clock)
        await inbound.receive(number=CALLER, text="hello", did=DID, via="modem:a", at=NOW)
        assert await mail.send_due() == 1  # the e-mail; the notification waits
    report = await gather(tmp_path / "textback.db", since=NOW - 60)
    assert report["staff_email"] == {"sent": 1}
    assert report["staff_notify"] == {"queued": 1}
