"""Staff notifications (e-mail, and Apprise channels) that survive an outage and a restart:
a small queue in the store.

A reply forwarded to staff is worth as much as the missed call it answers, so its e-mail
is written to the store (``staff_mail``) before anything tries to send it, exactly like a
text goes to the outbox first. A loop hands due rows to the local MTA (``Mailer``, smtplib
in a worker thread). A refused or unreachable MTA is retried with backoff (30 s doubling to
30 min); a row still unsent 24 h after it was written is given up with an ERROR log line,
as nobody acts on a day-old "call me back".

Exactly-once is not possible with SMTP: a crash after the MTA accepted a message and before
the row is marked sent sends it again at the restart. Each row's e-mail carries a
``Message-ID`` made from the row id, so that rare second copy is recognisably the same
message (mail clients and many MTAs drop a repeated Message-ID).

The same queue carries the Apprise notifications of ``[did.staff] notify`` (ntfy, Telegram,
Matrix...; textback.inbound.notify), one row per URL with ``channel = 'apprise'``: the same
retries, the same give-up. Such a row holds the URL's digest, not the URL (it holds a
token); the URL comes from the config when the row is sent, and a row whose URL has left
the config is given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textback.config import Secret, url_key, url_scheme
from textback.inbound.notify import AppriseNotifier, NotifyFailed
from textback.logfmt import log

if TYPE_CHECKING:
    from textback.inbound.staff import Mailer
    from textback.store import Store

logger = logging.getLogger("textback.inbound.staff")

RETRY_BASE_S = 30.0
RETRY_MAX_S = 1800.0
GIVE_UP_AFTER_S = 86400.0


@dataclass(frozen=True)
class QueuedMail:
    id: int
    recipients: tuple[str, ...]
    subject: str
    body: str
    created_at: float
    attempts: int
    channel: str = "email"  # or "apprise" (recipients: one URL key)


def message_id(mail_id: int, created_at: float, sender: str) -> str:
    """The same Message-ID for every attempt at one row: a resend after a crash is a
    duplicate the receiving side can recognise."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<textback-staff-{mail_id}-{int(created_at)}@{domain}>"


class MailQueue:
    """Queue staff e-mail in the store; send it, retrying, from one loop."""

    def __init__(self, store: Store, mailer: Mailer, *, clock: Callable[[], float],
                 retry_base_s: float = RETRY_BASE_S, retry_max_s: float = RETRY_MAX_S,
                 give_up_after_s: float = GIVE_UP_AFTER_S, max_sleep_s: float = 60.0,
                 notify_urls: Mapping[str, str] | None = None,
                 notifier: AppriseNotifier | None = None) -> None:
        self.store = store
        self.mailer = mailer
        # [did.staff] notify URLs by key (textback.inbound.notify.notify_urls)
        self.notify_urls = dict(notify_urls or {})
        self.notifier = notifier
        self.clock = clock
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.give_up_after_s = give_up_after_s
        self.max_sleep_s = max_sleep_s
        self._kick = asyncio.Event()

    def wake(self) -> None:
        self._kick.set()

    async def enqueue(self, to: Sequence[str], subject: str, body: str, *,
                      now: float) -> int | None:
        """Record one e-mail (before any attempt to send it); its row id, None without
        recipients."""
        if not to:
            return None
        async with self.store.transaction("queue staff e-mail") as db:
            cur = await db.execute(
                "INSERT INTO staff_mail (recipients, subject, body, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                ("\n".join(to), subject, body, now, now))
            mail_id = int(cur.lastrowid or 0)
        log(logger, logging.INFO, "email_queued", id=mail_id, to=len(to))
        self.wake()
        return mail_id

    async def notify(self, urls: Sequence[Secret], subject: str, body: str, *,
                     now: float) -> list[int]:
        """Record one Apprise notification per URL (before any attempt); the row ids."""
        if not urls:
            return []
        ids = []
        async with self.store.transaction("queue staff notification") as db:
            for url in urls:
                cur = await db.execute(
                    "INSERT INTO staff_mail (channel, recipients, subject, body, created_at, "
                    "next_attempt_at) VALUES ('apprise', ?, ?, ?, ?, ?)",
                    (url_key(url.reveal()), subject, body, now, now))
                ids.append(int(cur.lastrowid or 0))
        log(logger, logging.INFO, "notify_queued", ids=",".join(map(str, ids)),
            schemes=",".join(url_scheme(u.reveal()) for u in urls))
        self.wake()
        return ids

    async def due(self, now: float) -> list[QueuedMail]:
        rows = await self.store.fetchall(
            "SELECT * FROM staff_mail WHERE state = 'queued' AND next_attempt_at <= ? "
            "ORDER BY next_attempt_at, id", (now,))
        return [QueuedMail(r["id"], tuple(r["recipients"].split("\n")), r["subject"],
                           r["body"], r["created_at"], r["attempts"], r["channel"])
                for r in rows]

    async def send_due(self, now: float | None = None) -> int:
        """Try every due e-mail once; how many the MTA accepted."""
        at = self.clock() if now is None else now
        accepted = 0
        for mail in await self.due(at):
            if mail.channel == "apprise":
                accepted += await self._send_notification(mail)
                continue
            mid = message_id(mail.id, mail.created_at, self.mailer.config.sender)
            try:
                await self.mailer.deliver(mail.recipients, mail.subject, mail.body,
                                          message_id=mid)
            except (OSError, smtplib.SMTPException) as exc:
                await self._failed(mail, f"{type(exc).__name__}: {exc}", self.clock())
                continue
            async with self.store.transaction("mark staff e-mail sent") as db:
                await db.execute(
                    "UPDATE staff_mail SET state = 'sent', attempts = attempts + 1, "
                    "sent_at = ?, last_error = NULL WHERE id = ?", (self.clock(), mail.id))
            accepted += 1
            log(logger, logging.INFO, "email_sent", id=mail.id, to=len(mail.recipients),
                attempt=mail.attempts + 1)
        return accepted

    async def _send_notification(self, mail: QueuedMail) -> int:
        """One Apprise row: 1 when the service took it."""
        url = self.notify_urls.get(mail.recipients[0])
        scheme = url_scheme(url) if url is not None else "?"
        try:
            if url is None:
                raise NotifyFailed("the URL is no longer in [did.staff] notify")
            notifier = self.notifier or AppriseNotifier()
            self.notifier = notifier
            await notifier.deliver(url, mail.subject, mail.body)
        except NotifyFailed as exc:
            await self._failed(mail, str(exc), self.clock(), gone=url is None)
            return 0
        async with self.store.transaction("mark staff notification sent") as db:
            await db.execute(
                "UPDATE staff_mail SET state = 'sent', attempts = attempts + 1, "
                "sent_at = ?, last_error = NULL WHERE id = ?", (self.clock(), mail.id))
        log(logger, logging.INFO, "notify_sent", id=mail.id, scheme=scheme,
            attempt=mail.attempts + 1)
        return 1

    async def _failed(self, mail: QueuedMail, error: str, now: float, *,
                      gone: bool = False) -> None:
        attempts = mail.attempts + 1
        error = error[:200]
        what = "notify" if mail.channel == "apprise" else "email"
        if gone or now - mail.created_at >= self.give_up_after_s:
            async with self.store.transaction("give up staff e-mail") as db:
                await db.execute("UPDATE staff_mail SET state = 'failed', attempts = ?, "
                                 "last_error = ? WHERE id = ?", (attempts, error, mail.id))
            log(logger, logging.ERROR, f"{what}_given_up", id=mail.id, attempts=attempts,
                hours=round((now - mail.created_at) / 3600, 1), error=error)
            return
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempts - 1))
        async with self.store.transaction("retry staff e-mail") as db:
            await db.execute("UPDATE staff_mail SET attempts = ?, last_error = ?, "
                             "next_attempt_at = ? WHERE id = ?",
                             (attempts, error, now + delay, mail.id))
        if mail.channel == "apprise":  # the error names the scheme only (NotifyFailed)
            log(logger, logging.WARNING, "notify_failed", id=mail.id, attempt=attempts,
                retry_in_s=round(delay), error=error)
            return
        log(logger, logging.WARNING, "email_failed", id=mail.id, attempt=attempts,
            retry_in_s=round(delay), host=self.mailer.config.host,
            port=self.mailer.config.port, error=error)

    async def next_due_at(self) -> float | None:
        row = await self.store.fetchone(
            "SELECT min(next_attempt_at) AS t FROM staff_mail WHERE state = 'queued'")
        return row["t"] if row else None

    async def counts(self) -> dict[str, int]:
        rows = await self.store.fetchall(
            "SELECT state, count(*) AS n FROM staff_mail GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    async def run(self) -> None:
        """Forever: send what is due, then sleep until the next row is due (or a poke)."""
        from textback.store import StoreUnavailable

        while True:
            self._kick.clear()  # before looking: a row queued from here on wakes us again
            try:
                await self.send_due()
                due = await self.next_due_at()
            except StoreUnavailable as exc:  # locked or full: the rows wait, try later
                log(logger, logging.WARNING, "email_store_unavailable", error=str(exc)[:200])
                due = self.clock() + self.retry_base_s
            delay = self.max_sleep_s if due is None else min(self.max_sleep_s,
                                                             max(0.0, due - self.clock()))
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancel that
            # lands as the kick is set, and the daemon's shutdown would wait forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.01)):
                    await self._kick.wait()
