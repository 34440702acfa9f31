"""Staff e-mail queue: recorded before the MTA is tried, retried with backoff while the MTA
is down, given up after a day, kept across a restart, one Message-ID per row."""

from __future__ import annotations

import asyncio
import logging
import time
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest

from textback.cli.status import gather
from textback.config import EmailConfig
from textback.inbound.staff import Mailer
from textback.inbound.staff_mail import MailQueue, message_id
from textback.store import Store

T0 = 1_780_000_000.0


class Mta:
    """Stands in for the local MTA's socket (smtplib.SMTP's interface as Mailer uses it)."""

    accepted: ClassVar[list[EmailMessage]] = []
    down = False

    def __init__(self, host: str, port: int, timeout: float) -> None:
        if Mta.down:
            raise ConnectionRefusedError(111, "Connection refused")

    def __enter__(self) -> Mta:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send_message(self, msg: EmailMessage) -> None:
        Mta.accepted.append(msg)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mailer() -> Mailer:
    return Mailer(EmailConfig("127.0.0.1", 2525, "pbx@acme.example"),
                  smtp_factory=Mta)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def fresh_mta() -> None:
    Mta.accepted, Mta.down = [], False


async def rows(store: Store) -> list[dict[str, object]]:
    return [dict(r) for r in await store.fetchall("SELECT * FROM staff_mail ORDER BY id")]


async def test_mta_down_is_retried_with_backoff_then_sent_once(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    clock = Clock(T0)
    queue = MailQueue(store, mailer(), clock=clock)
    Mta.down = True
    mail_id = await queue.enqueue(("office@acme.example",), "Reply from +1 555", "hi\n",
                                  now=T0)
    assert [r["state"] for r in await rows(store)] == ["queued"]  # recorded before any try
    assert await queue.send_due() == 0
    (row,) = await rows(store)
    assert row["attempts"] == 1 and row["next_attempt_at"] == T0 + 30
    assert "ConnectionRefusedError" in str(row["last_error"])
    clock.now = T0 + 29
    assert await queue.send_due() == 0 and (await rows(store))[0]["attempts"] == 1  # not due
    clock.now = T0 + 30
    assert await queue.send_due() == 0
    assert (await rows(store))[0]["next_attempt_at"] == T0 + 30 + 60  # doubled
    Mta.down = False
    clock.now = T0 + 90
    assert await queue.send_due() == 1
    (row,) = await rows(store)
    assert row["state"] == "sent" and row["attempts"] == 3 and row["last_error"] is None
    (msg,) = Mta.accepted
    assert msg["To"] == "office@acme.example" and msg["Subject"] == "Reply from +1 555"
    assert msg["Message-ID"] == message_id(int(mail_id or 0), T0, "pbx@acme.example")
    assert msg["Message-ID"] == f"<textback-staff-{mail_id}-{int(T0)}@acme.example>"
    clock.now = T0 + 10_000
    assert await queue.send_due() == 0 and len(Mta.accepted) == 1  # never again
    await store.close()


async def test_given_up_after_a_day_with_an_error_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = await Store.open(tmp_path / "t.db")
    clock = Clock(T0)
    queue = MailQueue(store, mailer(), clock=clock, retry_max_s=1800)
    Mta.down = True
    await queue.enqueue(("a@acme.example", "b@acme.example"), "s", "b", now=T0)
    tries = 0
    while (await rows(store))[0]["state"] == "queued" and tries < 200:
        clock.now = float((await rows(store))[0]["next_attempt_at"])  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="textback.inbound.staff"):
            await queue.send_due()
        tries += 1
    (row,) = await rows(store)
    assert row["state"] == "failed" and clock.now - T0 >= 86400
    # 30 s doubling to the 30 min cap: about 50 tries in a day, not a busy loop
    assert 40 <= tries <= 60
    assert any("email_given_up" in r.getMessage() for r in caplog.records
               if r.levelno == logging.ERROR)
    await store.close()


async def test_queued_mail_survives_a_restart(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    await MailQueue(store, mailer(), clock=Clock(T0)).enqueue(("o@acme.example",), "s",
                                                              "b", now=T0)
    await store.close()  # the daemon stops (or is killed) before the MTA saw it
    store = await Store.open(tmp_path / "t.db")
    queue = MailQueue(store, mailer(), clock=Clock(T0 + 5))
    assert await queue.counts() == {"queued": 1}
    assert await queue.send_due() == 1 and len(Mta.accepted) == 1
    assert await queue.counts() == {"sent": 1}
    await store.close()


async def test_no_recipients_queues_nothing(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    assert await MailQueue(store, mailer(), clock=Clock(T0)).enqueue((), "s", "b",
                                                                     now=T0) is None
    assert await rows(store) == []
    await store.close()


async def test_status_shows_mail_waiting_for_the_mta(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "t.db")
    queue = MailQueue(store, mailer(), clock=Clock(T0))
    Mta.down = True
    await queue.enqueue(("o@acme.example",), "s", "b", now=T0)
    await queue.send_due()
    await store.close()
    report = await gather(tmp_path / "t.db", since=T0 - 60)
    assert report["staff_email"] == {"queued": 1}


async def test_the_loop_sends_at_once_and_retries_by_itself(tmp_path: Path) -> None:
    """The daemon's loop: a queued e-mail is sent without waiting for the next poll, and
    one refused by a down MTA goes out on its own once the MTA is back."""
    store = await Store.open(tmp_path / "t.db")
    queue = MailQueue(store, mailer(), clock=time.time, retry_base_s=0.2, max_sleep_s=60)
    loop = asyncio.create_task(queue.run())
    try:
        # generous bounds, polled: the MTA accepts a message a moment before the row is
        # marked sent, and a loaded CI machine stretches every step (no wall-clock assert)
        async def until_sent(n: int) -> None:
            for _ in range(1500):
                if len(Mta.accepted) >= n and await queue.counts() == {"sent": n}:
                    return
                await asyncio.sleep(0.02)

        await queue.enqueue(("o@acme.example",), "first", "b", now=time.time())
        await until_sent(1)
        assert [m["Subject"] for m in Mta.accepted] == ["first"]
        Mta.down = True
        await queue.enqueue(("o@acme.example",), "second", "b", now=time.time())
        await asyncio.sleep(0.1)
        Mta.down = False
        await until_sent(2)
        assert [m["Subject"] for m in Mta.accepted] == ["first", "second"]
        assert await queue.counts() == {"sent": 2}
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await store.close()
