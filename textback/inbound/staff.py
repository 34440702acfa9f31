"""Telling staff about a reply, and relaying their answer back to the customer.

Staff need three things at a glance on a phone: who wrote, which missed call it is about and
how long ago, and the text. So the forward reads exactly
``Reply from +1 555-123-0001 (missed call 14:02, 3 min ago): <text>`` (the call time in the
DID's zone), followed by the conversation's short code. Texting ``<CODE> <answer>`` back from
a staff phone relays the answer to the customer from the DID's own senders, so the customer
sees the business number, never a staff member's mobile. A code that matches no conversation
gets a clear answer back to the staff member instead of silence.

Urgent replies (``urgent_words``) go at once, day or night, marked ``URGENT:``; other SMS
forwards wait for business hours so nobody's phone buzzes at 3 a.m. for "thanks". E-mail goes
at once either way, to a local MTA via smtplib in a worker thread (the event loop never
blocks on SMTP), and so do the Apprise notifications of ``[did.staff] notify`` (ntfy,
Telegram, Matrix...). Both are queued in the store first (textback/staff_mail.py), so a
service that is down, or a restart, delays them rather than losing them; nothing is raised
into the reply path.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import smtplib
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import phonenumbers

from textback.inbound import conversations
from textback.inbound.staff_mail import MailQueue
from textback.logfmt import log

if TYPE_CHECKING:
    from textback.config import Config, DidConfig
    from textback.inbound.settings import EmailConfig
    from textback.outbound.outbox import Outbox
    from textback.store import Store

logger = logging.getLogger("textback.inbound.staff")

SMS_TEXT_LIMIT = 480  # three GSM-7 parts of the customer's text in an SMS forward
_CODE = re.compile(r"^\s*#?([0-9A-Fa-f]{6})\b[\s:,.-]*(.*)$", re.S)


def pretty_number(number: str) -> str:
    """``+15551230001`` → ``+1 555-123-0001`` (international format); as given if unparsable."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return clean(number)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def clean(text: str) -> str:
    """One line of printable text: control, format (bidi, zero-width) and line-break
    characters become spaces, runs of spaces one (hostile input never reaches a log, an
    SMS header or a mail header raw)."""
    out = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                  for ch in text)
    return " ".join(out.split())


def ago(seconds: float) -> str:
    """``3 min ago`` / ``2 h ago`` / ``3 d ago``."""
    s = max(0, int(seconds))
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 2 * 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"


def forward_text(number: str, body: str, *, missed_at: float | None, now: float, tz: str,
                 code: str | None, urgent: bool = False,
                 limit: int | None = SMS_TEXT_LIMIT) -> str:
    """The forward, e.g. ``Reply from +1 555-123-0001 (missed call 14:02, 3 min ago): Hi``."""
    if missed_at is None:
        when = "no recent missed call"
    else:
        zone = ZoneInfo(tz)
        local = dt.datetime.fromtimestamp(missed_at, tz=zone)
        same_day = local.date() == dt.datetime.fromtimestamp(now, tz=zone).date()
        stamp = local.strftime("%H:%M") if same_day else local.strftime("%d %b %H:%M")
        when = f"missed call {stamp}, {ago(now - missed_at)}"
    text = clean(body)
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    head = "URGENT: " if urgent else ""
    line = f"{head}Reply from {pretty_number(number)} ({when}): {text}"
    if code:
        line += f" [answer: {code} <your text>]"
    return line


@dataclass(frozen=True, slots=True)
class StaffCommand:
    """A text from a staff phone: the conversation code and the answer to relay."""

    code: str | None
    text: str


def parse_staff_text(body: str) -> StaffCommand:
    """``"4F2A9C Yes, Tuesday 9am"`` / ``"#4f2a9c: ok"`` → code and text (code None if the
    text does not start with one)."""
    m = _CODE.match(body)
    if m is None:
        return StaffCommand(None, body.strip())
    return StaffCommand(m.group(1).upper(), m.group(2).strip())


class Mailer:
    """Plain SMTP to a local MTA (host/port from [email]); each send in a worker thread."""

    def __init__(self, config: EmailConfig,
                 smtp_factory: Callable[..., smtplib.SMTP] = smtplib.SMTP) -> None:
        self.config = config
        self.smtp_factory = smtp_factory
        self.sent = 0
        self.failed = 0

    def _send_blocking(self, to: tuple[str, ...], subject: str, body: str,
                       message_id: str | None) -> None:
        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(to)
        msg["Subject"] = clean(subject)[:200]
        if message_id is not None:
            msg["Message-ID"] = message_id
        msg.set_content(body)
        with self.smtp_factory(self.config.host, self.config.port,
                               timeout=self.config.timeout_s) as smtp:
            smtp.send_message(msg)

    async def deliver(self, to: tuple[str, ...], subject: str, body: str, *,
                      message_id: str | None = None) -> None:
        """Hand one e-mail to the MTA; OSError / SMTPException say why it did not take it
        (the mail queue retries on them)."""
        await asyncio.to_thread(self._send_blocking, to, subject, body, message_id)

    async def send(self, to: tuple[str, ...], subject: str, body: str) -> bool:
        """True when the MTA accepted it; failures are logged (never raised)."""
        if not to:
            return False
        try:
            await self.deliver(to, subject, body)
        except (OSError, smtplib.SMTPException) as exc:
            self.failed += 1
            log(logger, logging.ERROR, "email_failed", to=len(to), host=self.config.host,
                port=self.config.port, error=clean(str(exc))[:200])
            return False
        self.sent += 1
        log(logger, logging.INFO, "email_sent", to=len(to), subject=clean(subject)[:80])
        return True


class StaffDesk:
    """Forwards replies to a DID's staff and relays staff answers to customers."""

    def __init__(self, store: Store, outbox: Outbox, config: Config, *,
                 mailer: Mailer | None = None, mail: MailQueue | None = None,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.outbox = outbox
        self.config = config
        self.mailer = mailer if mailer is not None else Mailer(config.email)
        # the daemon passes the queue whose loop it runs; without one, drain_mail() sends
        self.mail = mail if mail is not None else MailQueue(store, self.mailer,
                                                            clock=time.time)
        self.wake = wake
        # issue 14: possible opt-outs held for staff (imported here: it uses this module)
        from textback.inbound.possible_optout import PossibleOptOuts
        self.reviews = PossibleOptOuts(store, outbox, config, mail=self.mail,
                                       missed_at=self.missed_at, wake=wake)

    def reconfigure(self, config: Config) -> None:
        """A reloaded config (SIGHUP): staff phones and addresses, and the MTA, from the
        next forward on (e-mails already queued go to the addresses they were queued for)."""
        self.config = config
        self.mailer.config = config.email
        self.reviews.config = config

    def is_staff(self, number: str) -> bool:
        return any(number in did.staff.sms for did in self.config.dids)

    async def missed_at(self, number: str, did: str, before: float) -> float | None:
        """When ``number`` last missed a call to ``did`` (at or before ``before``)."""
        row = await self.store.fetchone(
            "SELECT max(coalesce(ended_at, decided_at)) AS t FROM calls WHERE caller = ? "
            "AND did = ? AND direction = 'inbound' AND verdict = 'missed' "
            "AND coalesce(ended_at, decided_at) <= ?", (number, did, before))
        return row["t"] if row is not None else None

    async def forward(self, number: str, did: DidConfig, body: str, *, code: str | None,
                      urgent: bool, at: float, note: str | None = None) -> int:
        """SMS every staff phone and e-mail every staff address; how many SMS were queued."""
        missed = await self.missed_at(number, did.number, at)
        tz = did.hours.timezone
        sms = forward_text(number, body, missed_at=missed, now=at, tz=tz, code=code,
                           urgent=urgent)
        if note:
            sms = f"{sms} ({note})"
        log(logger, logging.WARNING if urgent else logging.INFO, "reply_for_staff",
            number=number, did=did.number, urgent=urgent, staff_sms=len(did.staff.sms),
            staff_email=len(did.staff.email), staff_notify=len(did.staff.notify), code=code,
            chars=len(body))
        not_before = at if urgent else (did.hours.next_open(at) or at)
        for staff_number in did.staff.sms:  # staff are not customers: no opt-out check
            await self.outbox.enqueue(call_id=None, kind="staff-forward", number=staff_number,
                                      did=did.number, body=sms, senders=did.senders,
                                      not_before=not_before, now=at)
        if did.staff.sms:
            self.wake()
        if did.staff.email or did.staff.notify:
            full = forward_text(number, body, missed_at=missed, now=at, tz=tz, code=None,
                                urgent=urgent, limit=None)
            subject = (f"{'URGENT: ' if urgent else ''}Reply from {pretty_number(number)} "
                       f"to {did.business or did.number}")
            text = full + ("\n\n" + note if note else "")
            if code:
                text += (f"\n\nTo answer by SMS from a staff phone, text {code} followed by "
                         f"your answer to {did.number}.")
            await self.mail.enqueue(did.staff.email, subject, text + "\n", now=at)
            await self.mail.notify(did.staff.notify, subject, text + "\n", now=at)
        return len(did.staff.sms)

    async def drain_mail(self) -> int:
        """Send the e-mail that is due now, here (tests; the daemon's loop does it
        otherwise); how many the MTA took."""
        return await self.mail.send_due()

    async def handle_staff_text(self, staff_number: str, body: str, at: float,
                                via: str | None = None) -> str:
        """A text from a staff phone: relay it by its code, or answer why not. Returns
        "relayed", "no-code", "unknown-code", "empty", "opted-out", "refused" (another
        reason of the outbox's gate, e.g. the customer's cap for relays) or "no-did", or a
        possible opt-out's "review-optout", "review-not-optout", "review-pending",
        "no-review" (textback.inbound.possible_optout)."""
        cmd = parse_staff_text(body)
        home = next((d for d in self.config.dids if staff_number in d.staff.sms), None)
        if cmd.code is None:
            await self._answer(staff_number, home, "textback: start your answer with the "
                               "conversation code from the forward, e.g. \"4F2A9C See you "
                               "at 3\".", at)
            return "no-code"
        row = await self.store.fetchone(
            "SELECT * FROM conversations WHERE code = ? ORDER BY id DESC LIMIT 1", (cmd.code,))
        did = self.config.did(row["did"]) if row is not None else None
        if row is None or did is None:
            await self._answer(staff_number, home, f"textback: no conversation has the code "
                               f"{cmd.code}; check the code in the forward and send "
                               f"\"CODE your answer\" again.", at)
            log(logger, logging.WARNING, "staff_code_unknown", staff=staff_number,
                code=cmd.code)
            return "unknown-code"
        customer = row["number"]
        if not cmd.text:
            await self._answer(staff_number, did, f"textback: nothing to send after "
                               f"{cmd.code}; write the answer after the code.", at)
            return "empty"
        if staff_number not in did.staff.sms:
            await self._answer(staff_number, home, f"textback: {cmd.code} belongs to "
                               f"another line; only its own staff can answer.", at)
            return "no-did"
        review = await self.reviews.staff_reply(staff_number, did, row, cmd.text, at)
        if review is not None:  # a possible opt-out: decided, or relays held until it is
            return review
        relay = await self.outbox.enqueue(
            call_id=None, kind="relay", number=customer, did=did.number, body=cmd.text,
            senders=did.senders, not_before=at, now=at)
        if relay.refused == "opted-out":
            await self._answer(staff_number, did, f"textback: not sent - "
                               f"{pretty_number(customer)} has opted out of texts. "
                               f"Call them instead.", at)
            return "opted-out"
        if relay.refused is not None:
            await self._answer(staff_number, did, f"textback: not sent to "
                               f"{pretty_number(customer)} ({relay.refused}: "
                               f"{relay.detail}). Call them instead.", at)
            return "refused"
        async with self.store.transaction("relay") as db:
            await conversations.touch(db, row["id"], at)
        self.wake()
        log(logger, logging.INFO, "staff_relayed", staff=staff_number, number=customer,
            did=did.number, code=cmd.code, outbox=relay.id, chars=len(cmd.text))
        return "relayed"

    async def _answer(self, staff_number: str, did: DidConfig | None, text: str,
                      at: float) -> None:
        if did is None:
            return
        await self.outbox.enqueue(call_id=None, kind="staff-answer", number=staff_number,
                                  did=did.number, body=text, senders=did.senders,
                                  not_before=at, now=at)
        self.wake()
