"""Staff: the forward's exact format, SMS/e-mail, urgent at once vs business hours, short-code
relay from a staff phone, unknown codes answered, hostile text cleaned."""

from __future__ import annotations

import asyncio
import datetime as dt
import smtplib
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from tests.daemon_fakes import CALLER, DID, STAFF, Clock, lab_gate, make_config, opened, outcome
from textback.config import EmailConfig
from textback.inbound.handler import InboundHandler
from textback.inbound.staff import (
    Mailer,
    StaffCommand,
    StaffDesk,
    forward_text,
    parse_staff_text,
    pretty_number,
)
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.store import Store

NY = ZoneInfo("America/New_York")
MISSED = dt.datetime(2026, 6, 10, 14, 2, tzinfo=NY).timestamp()


def test_forward_has_the_exact_format() -> None:
    text = forward_text(CALLER, "Can you come Tuesday?", missed_at=MISSED, now=MISSED + 180,
                        tz="America/New_York", code=None)
    assert text == ("Reply from +1 555-123-0001 (missed call 14:02, 3 min ago): "
                    "Can you come Tuesday?")
    coded = forward_text(CALLER, "ok", missed_at=MISSED, now=MISSED + 7300,
                         tz="America/New_York", code="4F2A9C", urgent=True)
    assert coded == ("URGENT: Reply from +1 555-123-0001 (missed call 14:02, 2 h ago): ok "
                     "[answer: 4F2A9C <your text>]")
    older = forward_text(CALLER, "hi", missed_at=MISSED, now=MISSED + 3 * 86400,
                         tz="America/New_York", code=None)
    assert "(missed call 10 Jun 14:02, 3 d ago)" in older
    none = forward_text(CALLER, "hi", missed_at=None, now=MISSED, tz="UTC", code=None)
    assert none == "Reply from +1 555-123-0001 (no recent missed call): hi"


def test_hostile_text_is_one_clean_line_and_long_text_is_cut() -> None:
    text = forward_text(CALLER, "a\r\nb\x1b[2J\u202ec\x1a", missed_at=None, now=0, tz="UTC",
                        code=None)
    assert text.endswith(": a b [2J c") and not any(ord(c) < 32 for c in text)
    long = forward_text(CALLER, "x" * 2000, missed_at=None, now=0, tz="UTC", code=None)
    assert len(long) < 600 and long.endswith("…")
    assert pretty_number("+442079460000") == "+44 20 7946 0000"
    assert pretty_number("garbage\n") == "garbage"


def test_staff_text_parsing() -> None:
    assert parse_staff_text("4f2a9c Yes, Tuesday 9am") == StaffCommand("4F2A9C",
                                                                       "Yes, Tuesday 9am")
    assert parse_staff_text("#4F2A9C: ok") == StaffCommand("4F2A9C", "ok")
    assert parse_staff_text("thanks") == StaffCommand(None, "thanks")
    assert parse_staff_text("4F2A9Cx hello").code is None


class Rig:
    def __init__(self, store: Store, tmp: Path, clock: Clock) -> None:
        self.store = store
        self.config = make_config(tmp)
        self.outbox = Outbox(store, config=lab_gate())
        self.pipeline = CallPipeline(store, self.outbox, self.config, clock=clock)
        self.inbound = InboundHandler(store, self.outbox, self.config, clock=clock)

    async def rows(self, kind: str) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.store.fetchall(
            "SELECT * FROM outbox WHERE kind = ? ORDER BY id", (kind,))]

    async def say(self, number: str, text: str, at: float) -> None:
        await self.inbound.receive(number=number, text=text, did=DID, via="modem:a", at=at)


async def test_reply_forwarded_then_staff_answer_relayed_to_customer(tmp_path: Path) -> None:
    clock = Clock(MISSED)
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, clock)
        await rig.pipeline.handle(outcome("c1", ended_at=MISSED))
        await rig.say(CALLER, "Can you come Tuesday?", MISSED + 180)
        (fwd,) = await rig.rows("staff-forward")
        code = (await store.fetchone("SELECT code FROM conversations"))["code"]  # type: ignore[index]
        assert fwd["number"] == STAFF and fwd["body"] == (
            "Reply from +1 555-123-0001 (missed call 14:02, 3 min ago): Can you come "
            f"Tuesday? [answer: {code} <your text>]")
        await rig.say(STAFF, f"{code.lower()} Yes, 9am Tuesday works", MISSED + 400)
        (relay,) = await rig.rows("relay")
        assert relay["number"] == CALLER and relay["body"] == "Yes, 9am Tuesday works"
        assert relay["did"] == DID and relay["senders"] == '["modem:a", "sip"]'
        # the staff text is stored, but opens no conversation of its own
        assert (await store.fetchone("SELECT count(*) AS n FROM conversations"))["n"] == 1  # type: ignore[index]
        assert (await store.fetchone("SELECT count(*) AS n FROM messages WHERE number = ?",
                                     (STAFF,)))["n"] == 1  # type: ignore[index]


async def test_unknown_code_and_missing_code_get_a_clear_answer(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, Clock(MISSED))
        await rig.say(STAFF, "ABCDEF see you then", MISSED)
        await rig.say(STAFF, "see you then", MISSED + 1)
        answers = await rig.rows("staff-answer")
        assert [a["number"] for a in answers] == [STAFF, STAFF]
        assert "no conversation has the code ABCDEF" in answers[0]["body"]
        assert "start your answer with the conversation code" in answers[1]["body"]
        assert await rig.rows("relay") == []


async def test_relay_to_an_opted_out_customer_is_refused(tmp_path: Path) -> None:
    async with opened(tmp_path) as store:
        rig = Rig(store, tmp_path, Clock(MISSED))
        await rig.say(CALLER, "what time?", MISSED)
        code = (await store.fetchone("SELECT code FROM conversations"))["code"]  # type: ignore[index]
        await rig.say(CALLER, "STOP", MISSED + 10)
        await rig.say(STAFF, f"{code} 9am", MISSED + 20)
        (relay,) = await rig.rows("relay")  # refused by the outbox's gate, and recorded
        assert (relay["state"], relay["cancel_reason"]) == ("skipped", "opted-out")
        (answer,) = await rig.rows("staff-answer")
        assert "opted out" in answer["body"]


async def test_urgent_goes_at_once_after_hours_others_wait_for_opening(
        tmp_path: Path) -> None:
    night = dt.datetime(2026, 6, 10, 23, 0, tzinfo=NY).timestamp()
    text = make_config(tmp_path)
    did = text.dids[0]
    hours = type(did.hours)("America/New_York")  # Mon-Fri 09:00-17:00
    config = type(text)(**{**{f: getattr(text, f) for f in text.__dataclass_fields__},
                           "dids": (type(did)(**{**{f: getattr(did, f) for f in
                                                     did.__dataclass_fields__},
                                                  "hours": hours}),)})
    async with opened(tmp_path) as store:
        outbox = Outbox(store, config=lab_gate())
        desk = StaffDesk(store, outbox, config)
        await desk.forward(CALLER, config.dids[0], "thanks!", code=None, urgent=False,
                           at=night)
        await desk.forward(CALLER, config.dids[0], "water everywhere, leak", code=None,
                           urgent=True, at=night)
        rows = await store.fetchall("SELECT body, not_before FROM outbox ORDER BY id")
        assert rows[0]["not_before"] == dt.datetime(2026, 6, 11, 9, 0, tzinfo=NY).timestamp()
        assert rows[1]["not_before"] == night and rows[1]["body"].startswith("URGENT: ")


class FakeSMTP:
    """Stands in for the MTA's socket only; records the messages handed over."""

    sent: ClassVar[list[tuple[str, int, EmailMessage, str]]] = []
    fail = False

    def __init__(self, host: str, port: int, timeout: float) -> None:
        if FakeSMTP.fail:
            raise ConnectionRefusedError(111, "Connection refused")
        self.host, self.port = host, port

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send_message(self, msg: EmailMessage) -> None:
        FakeSMTP.sent.append((self.host, self.port, msg, threading.current_thread().name))


async def test_email_goes_through_the_mta_in_a_thread(tmp_path: Path) -> None:
    FakeSMTP.sent, FakeSMTP.fail = [], False
    config = make_config(tmp_path)
    did = config.dids[0]
    did = type(did)(**{**{f: getattr(did, f) for f in did.__dataclass_fields__},
                       "staff": type(did.staff)((), ("office@acme.example",))})
    mailer = Mailer(EmailConfig("mta.local", 2525, "pbx@acme.example"),
                    smtp_factory=FakeSMTP)  # type: ignore[arg-type]
    async with opened(tmp_path) as store:
        desk = StaffDesk(store, Outbox(store, config=lab_gate()), config, mailer=mailer)
        await desk.forward(CALLER, did, "Subject:\r\nBcc: x@evil\r\n\r\nhi", code="4F2A9C",
                           urgent=True, at=MISSED)
        await desk.drain_mail()
        ((host, port, msg, thread),) = FakeSMTP.sent
        assert (host, port) == ("mta.local", 2525) and thread != "MainThread"
        assert msg["To"] == "office@acme.example" and msg["From"] == "pbx@acme.example"
        assert msg["Subject"] == "URGENT: Reply from +1 555-123-0001 to Acme Plumbing"
        assert msg["Bcc"] is None
        body = msg.get_content()
        assert body.startswith("URGENT: Reply from +1 555-123-0001 (no recent missed call): ")
        assert "text 4F2A9C followed by your answer" in body
        FakeSMTP.fail = True
        assert not await mailer.send(("a@b.c",), "s", "b")  # logged, not raised
        assert mailer.failed == 1


async def test_real_smtp_to_a_local_socket(tmp_path: Path) -> None:
    """smtplib against a minimal SMTP dialogue on 127.0.0.1 (RFC 5321 replies)."""
    got: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test ESMTP\r\n")
        data = False
        while line := await reader.readline():
            if data:
                got.append(line)
                if line == b".\r\n":
                    data = False
                    writer.write(b"250 queued\r\n")
                continue
            cmd = line[:4].upper()
            if cmd in (b"EHLO", b"HELO"):
                writer.write(b"250 test\r\n")
            elif cmd == b"DATA":
                data = True
                writer.write(b"354 go\r\n")
            elif cmd == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        mailer = Mailer(EmailConfig("127.0.0.1", port, "pbx@acme.example", timeout_s=5))
        assert await asyncio.wait_for(mailer.send(("office@acme.example",), "hello", "body\n"),
                                      10)
    finally:
        server.close()
        await server.wait_closed()
    assert b"Subject: hello\r\n" in got and b"body\r\n" in got
    assert mailer.smtp_factory is smtplib.SMTP  # the real client was used
