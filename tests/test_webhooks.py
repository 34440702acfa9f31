"""Webhooks: every event kind, signed, from a durable queue; once each across a restart in
the middle of a retry; a dead or slow hook never holds up a text."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_fakes import (
    CALLER,
    DID,
    NOW,
    STAFF,
    Clock,
    FakeSender,
    config_toml,
    lab_gate,
    opened,
    outcome,
    permanent,
)
from tests.webhook_receiver import HOLD, receiver, refused_url, wait_until
from textback.config import WEBHOOK_EVENTS, Config, ConfigError, parse_config
from textback.inbound.handler import InboundHandler
from textback.outbound.dispatcher import Dispatcher
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.store import Store
from textback.webhooks import (
    SCHEMA,
    SIGNATURE_HEADER,
    WebhookDelivery,
    Webhooks,
    emit_conversation_outcome,
    sign,
    verify,
)

SECRET = "whsec-0123456789abcdef"


def hook_config(tmp: Path, *hooks: dict[str, Any]) -> Config:
    text = config_toml(tmp, webhook=[{"secret": SECRET, **h} for h in hooks])
    return parse_config(text, tmp / "textback.toml", check_permissions=False)


class Office:
    """The real pipeline, dispatcher and inbound handler on one store, with fake senders."""

    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self.hub = Webhooks(config.webhooks, clock=clock, store=store)
        self.outbox = Outbox(store, config=lab_gate())
        self.modem, self.sip = FakeSender("modem:a"), FakeSender("sip")
        self.dispatcher = Dispatcher(self.outbox, {"modem:a": self.modem, "sip": self.sip},
                                     clock=clock)
        self.pipeline = CallPipeline(store, self.outbox, config, clock=clock,
                                     wake=self.dispatcher.wake)
        self.inbound = InboundHandler(store, self.outbox, config, clock=clock,
                                      wake=self.dispatcher.wake)
        self.dispatcher.hooks = self.pipeline.hooks = self.inbound.hooks = self.hub
        self.delivery = WebhookDelivery(store, config.webhooks, clock=clock, hub=self.hub)

    async def send_all(self) -> None:
        await self.dispatcher.pump()
        while self.dispatcher._tasks:
            await asyncio.wait(set(self.dispatcher._tasks))


@contextlib.asynccontextmanager
async def running(coro: Any) -> Any:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ------------------------------------------------------------------------ signing


def test_signature_verifies_and_rejects_tampering_and_staleness() -> None:
    body = b'{"schema":"textback.webhook/1","event":"optout"}'
    header = sign(SECRET, body, 1_800_000_000)
    assert header.startswith("t=1800000000,v1=")
    assert verify(SECRET, body, header, now=1_800_000_010)
    assert not verify(SECRET, body + b" ", header, now=1_800_000_010)
    assert not verify("another-secret-value", body, header, now=1_800_000_010)
    assert not verify(SECRET, body, header, now=1_800_000_000 + 301)  # replayed later
    assert not verify(SECRET, body, "v1=deadbeef", now=1_800_000_000)


# ------------------------------------------------------------------------ config


def test_config_requires_a_long_secret_and_known_events(tmp_path: Path) -> None:
    text = config_toml(tmp_path, webhook=[
        {"url": "https://crm.example/hook/TOKEN123"},
        {"url": "https://crm.example/b", "secret": "short"},
        {"url": "https://crm.example/c", "secret": SECRET, "events": ["call.mised"]},
        {"url": "ftp://crm.example/TOKEN456", "secret": SECRET},
    ])
    with pytest.raises(ConfigError) as err:
        parse_config(text, tmp_path / "t.toml", check_permissions=False)
    rendered = str(err.value)
    assert "webhook[1]: missing: secret_file (recommended) or secret" in rendered
    assert "webhook[2].secret: the secret is shorter than 16" in rendered
    assert "webhook[3].events: unknown events 'call.mised'" in rendered
    assert "webhook[4].url: must be an http:// or https:// URL" in rendered
    assert "TOKEN123" not in rendered and "TOKEN456" not in rendered


def test_config_secret_file_must_be_private_and_defaults_to_every_event(
        tmp_path: Path) -> None:
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET + "\n")
    os.chmod(secret_file, 0o644)
    text = config_toml(tmp_path, webhook=[{"url": "https://crm.example/h",
                                           "secret_file": str(secret_file)}])
    with pytest.raises(ConfigError, match="chmod 600"):
        parse_config(text, tmp_path / "t.toml", check_permissions=False)
    os.chmod(secret_file, 0o600)
    (hook,) = parse_config(text, tmp_path / "t.toml", check_permissions=False).webhooks
    assert hook.secret.reveal() == SECRET and hook.events == frozenset(WEBHOOK_EVENTS)
    assert SECRET not in repr(hook) and "crm.example/h" not in repr(hook)


def test_config_with_an_inline_webhook_secret_must_be_private(tmp_path: Path) -> None:
    text = config_toml(tmp_path, webhook=[{"url": "https://crm.example/h", "secret": SECRET}])
    with pytest.raises(ConfigError, match=r"webhook\[1\]\.secret"):
        parse_config(text, tmp_path / "t.toml", file_mode=0o100644)


# ------------------------------------------------------------------------ every event


async def test_every_event_kind_reaches_the_receiver_signed_once(tmp_path: Path) -> None:
    clock = Clock()
    async with receiver() as rx, opened(tmp_path) as store:
        config = hook_config(tmp_path, {"url": rx.url})
        office = Office(store, config, clock)
        office.sip.script = [permanent("sip")]
        async with running(office.delivery.run()):
            await office.pipeline.handle(outcome("call-1"))               # call.missed
            await office.send_all()                                       # text.sent
            await office.inbound.delivery_report("modem:a", 1, "delivered", NOW + 5)
            failing = await office.outbox.enqueue(
                call_id=None, kind="manual", number="+15551230002", did=DID, body="hello",
                senders=("sip",), not_before=NOW, now=NOW)
            await office.send_all()                                       # text.failed
            async def receive(text: str, at: float) -> int | None:
                return await office.inbound.receive(number=CALLER, text=text, did=DID,
                                                    via="modem:a", at=at)
            reply = await receive("Tuesday at 9 works", NOW + 60)         # reply.received
            await receive("STOP", NOW + 120)                              # optout
            await receive("START", NOW + 180)                             # optin
            conversation = await store.fetchone("SELECT id FROM conversations")
            assert conversation is not None
            await emit_conversation_outcome(office.hub, conversation["id"], "booked",
                                            by="alice", at=NOW + 240)
            await rx.wait_for(lambda: set(WEBHOOK_EVENTS) <= {
                r.json["event"] for r in rx.accepted})
            await wait_until(lambda: not office.delivery._in_flight)
        events: dict[str, dict[str, Any]] = {}
        for r in rx.accepted:
            assert verify(SECRET, r.body, r.headers[SIGNATURE_HEADER], now=clock())
            body = r.json
            assert body["schema"] == SCHEMA and r.headers["Textback-Event"] == body["event"]
            assert r.headers["Textback-Event-Id"] == body["id"]
            assert body["occurred_at"].endswith("Z")
            events.setdefault(body["event"], body)
        ids = [r.json["id"] for r in rx.accepted]
        assert len(ids) == len(set(ids))  # each event once
        assert events["call.missed"]["data"]["call"]["id"] == "call-1"
        assert events["call.missed"]["data"]["call"]["reason"] == "noanswer"
        sent = events["text.sent"]["data"]
        assert sent["text"]["kind"] == "textback" and sent["text"]["sender"] == "modem:a"
        assert sent["latency_s"] is not None and sent["latency_s"] >= 0
        assert events["text.delivered"]["data"]["text"]["call_id"] == "call-1"
        failed = events["text.failed"]["data"]["text"]
        assert failed["outbox_id"] == failing.id and failed["stage"] == "send"
        assert events["reply.received"]["data"]["message"]["id"] == reply
        assert events["reply.received"]["data"]["message"]["body"] == "Tuesday at 9 works"
        assert events["optout"]["data"]["number"] == CALLER
        assert events["optin"]["data"]["source"] == "keyword"
        assert events["conversation.outcome"]["data"]["outcome"] == "booked"
        assert events["conversation.outcome"]["data"]["by"] == "alice"


async def test_a_hook_gets_only_the_events_it_asked_for(tmp_path: Path) -> None:
    clock = Clock()
    async with receiver() as rx, opened(tmp_path) as store:
        config = hook_config(tmp_path, {"url": rx.url, "events": ["reply.received"]})
        office = Office(store, config, clock)
        await office.pipeline.handle(outcome("call-1"))
        await office.send_all()
        await office.inbound.receive(number=CALLER, text="hi", did=DID, via="modem:a",
                                     at=NOW + 5)
        rows = await store.fetchall("SELECT event FROM webhook_deliveries")
        assert [r["event"] for r in rows] == ["reply.received"]


async def test_the_same_fact_emitted_twice_is_queued_once(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        office = Office(store, hook_config(tmp_path, {"url": "https://crm.example/h"}),
                        clock)
        message_id = await office.inbound.receive(number=CALLER, text="hi", did=DID,
                                                  via="modem:a", at=NOW)
        assert message_id is not None
        await office.inbound.resume(message_id)  # as after a restart mid-handling
        await office.pipeline.handle(outcome("call-1"))
        await office.pipeline.redecide(outcome("call-1"))
        rows = await store.fetchall("SELECT event FROM webhook_deliveries ORDER BY id")
        assert [r["event"] for r in rows] == ["reply.received", "call.missed"]


# ------------------------------------------------------------------------ restarts


async def test_restart_in_the_middle_of_a_retry_delivers_each_event_once(
        tmp_path: Path) -> None:
    """Attempt 1 answered 500; attempt 2 hangs and the loop is killed and the store closed
    under it; after the restart attempt 3 is accepted, and nothing comes again."""
    clock = Clock()
    path = tmp_path / "textback.db"
    async with receiver(script=[500, HOLD]) as rx:
        config = hook_config(tmp_path, {"url": rx.url})
        store = await Store.open(path)
        hub = Webhooks(config.webhooks, clock=clock, store=store)
        delivery = WebhookDelivery(store, config.webhooks, clock=clock, hub=hub,
                                   retry_base_s=60.0)
        loop = asyncio.create_task(delivery.run())
        for n in (1, 2):
            await hub.emit("optout", f"message:{n}", {"number": CALLER, "n": n}, at=NOW)
        await rx.wait_for(lambda: len(rx.requests) == 2)  # both answered 500

        async def retried() -> bool:
            rows = await store.fetchall("SELECT attempts FROM webhook_deliveries")
            return all(r["attempts"] == 1 for r in rows)
        await wait_until(retried)
        clock.t += 60.0
        delivery.wake()
        await rx.wait_for(lambda: rx.holding == 2)  # both retries now in flight
        loop.cancel()  # the process dies mid-retry
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await store.close()
        rx.release.set()
        await rx.wait_for(lambda: rx.holding == 0)

        clock.t += 600.0
        store = await Store.open(path)
        try:
            hub = Webhooks(config.webhooks, clock=clock, store=store)
            delivery = WebhookDelivery(store, config.webhooks, clock=clock, hub=hub,
                                       retry_base_s=60.0)
            async with running(delivery.run()):
                await rx.wait_for(lambda: len(rx.accepted) == 2)
                for n in (1, 2):  # the same facts again (a replay): nothing new
                    await hub.emit("optout", f"message:{n}", {"number": CALLER}, at=NOW)

                async def all_delivered() -> bool:
                    rows = await store.fetchall("SELECT state FROM webhook_deliveries")
                    return [r["state"] for r in rows] == ["delivered", "delivered"]
                await wait_until(all_delivered)
            ids = [r.json["id"] for r in rx.accepted]
            assert len(ids) == 2 and len(set(ids)) == 2
            assert sorted(r.json["data"]["n"] for r in rx.accepted) == [1, 2]
            for r in rx.accepted:
                # the killed attempt left no trace in the store: this is the 2nd recorded
                assert r.headers["Textback-Attempt"] == "2"
                assert verify(SECRET, r.body, r.headers[SIGNATURE_HEADER], now=clock())
            assert len(rx.requests) == 6  # 500, the killed retry, the accepted one: each
        finally:
            await store.close()


async def test_gives_up_after_the_configured_hours(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    url = refused_url("/hook/TOKEN-IN-PATH")
    async with opened(tmp_path) as store:
        config = hook_config(tmp_path, {"url": url, "give_up_after_h": 1})
        hub = Webhooks(config.webhooks, clock=clock, store=store)
        delivery = WebhookDelivery(store, config.webhooks, clock=clock, hub=hub)
        await hub.emit("optin", "message:1", {"number": CALLER}, at=NOW)
        caplog.set_level(logging.INFO, logger="textback")
        async with running(delivery.run()):
            async def state() -> str:
                row = await store.fetchone("SELECT state, attempts FROM webhook_deliveries")
                assert row is not None
                return f"{row['state']}/{row['attempts']}"
            async def attempted_once() -> bool:
                return await state() == "queued/1"
            await wait_until(attempted_once)
            clock.t += 3601.0
            delivery.wake()
            async def given_up() -> bool:
                return await state() == "failed/2"
            await wait_until(given_up)
        assert "webhook_given_up" in caplog.text
        assert "TOKEN-IN-PATH" not in caplog.text and SECRET not in caplog.text


# ------------------------------------------------------------------------ never slows texting


async def test_a_dead_and_a_slow_hook_do_not_hold_up_a_text(tmp_path: Path) -> None:
    """Measured by events: the missed call's text is sent while the refused hook is still
    failing and the slow hook still has the call.missed request open."""
    clock = Clock()
    dead = refused_url()
    async with receiver(script=[HOLD]) as slow, opened(tmp_path) as store:
        config = hook_config(tmp_path, {"url": dead}, {"url": slow.url})
        office = Office(store, config, clock)
        sent = asyncio.Event()
        office.hub.observers.append(lambda event, data: sent.set()
                                    if event == "text.sent" else None)
        async with running(office.delivery.run()), running(office.dispatcher.run()):
            office.pipeline.submit(outcome("call-1"))
            async with running(office.pipeline.run()):
                async with asyncio.timeout(30):
                    await slow.wait_for(lambda: slow.holding == 1)  # call.missed hangs
                    await sent.wait()
                assert slow.holding == 1  # still hanging
                row = await store.fetchone("SELECT state FROM outbox WHERE call_id = 'call-1'")
                assert row is not None and row["state"] == "sent"
                assert office.modem.calls and office.modem.calls[0][0] == CALLER

                async def dead_failing() -> bool:
                    rows = await store.fetchall(
                        "SELECT state, last_error FROM webhook_deliveries WHERE hook = ? "
                        "AND event = 'call.missed'", (config.webhooks[0].key,))
                    return bool(rows) and rows[0]["state"] == "queued" \
                        and rows[0]["last_error"] is not None
                await wait_until(dead_failing)
                assert slow.holding == 1


async def test_a_store_outage_holds_the_event_in_memory_and_writes_it_later(
        tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        config = hook_config(tmp_path, {"url": "https://crm.example/h"})
        hub = Webhooks(config.webhooks, clock=clock, store=store)
        from textback.store import StoreUnavailable

        real = store.transaction

        def broken(operation: str) -> Any:
            raise StoreUnavailable(operation, OSError("database or disk is full"))
        store.transaction = broken  # type: ignore[method-assign]
        assert await hub.emit("optout", "message:1", {"number": CALLER}, at=NOW) == 0
        store.transaction = real  # type: ignore[method-assign]
        assert await hub.flush() == 1
        row = await store.fetchone("SELECT event, body FROM webhook_deliveries")
        assert row is not None and row["event"] == "optout"
        assert json.loads(row["body"])["data"]["number"] == CALLER


def test_the_verification_snippet_in_the_docs_verifies_our_signature() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "webhooks.md").read_text(encoding="utf-8")
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), scope)
    body = b'{"schema":"textback.webhook/1","event":"optout","id":"evt_1"}'
    header = sign(SECRET, body, int(time.time()))
    assert scope["verify"](SECRET, body, header)
    assert not scope["verify"](SECRET, body.replace(b"optout", b"optin"), header)
    assert not scope["verify"](SECRET, body, sign(SECRET, body, int(time.time()) - 3600))


async def test_the_daemon_wires_the_hooks_and_runs_the_delivery_loop(tmp_path: Path) -> None:
    """End to end: a real Asterisk capture on the fake AMI, the simulated modem, the real
    daemon; the receiver gets call.missed and text.sent for the missed caller."""
    from tests.test_daemon_e2e import SECRET as AMI_SECRET
    from tests.test_daemon_e2e import capture_events, rig_for
    from textback.testing.lab_config import lab_config_toml

    async with receiver() as rx, rig_for(tmp_path, capture_events("direct-busy.ami.ts")) \
            as rig:
        def config() -> Config:
            assert rig.ami._server is not None
            port = rig.ami._server.sockets[0].getsockname()[1]
            text = lab_config_toml(ami_port=port, modem_port=rig.sim.port, store=rig.db,
                                   pbx={"secret": AMI_SECRET}, trunks={"settle_s": 0.2},
                                   webhook=[{"url": rx.url, "secret": SECRET,
                                             "events": ["call.missed", "text.sent"]}])
            return parse_config(text, tmp_path / "textback.toml", check_permissions=False)
        rig.config = config  # type: ignore[method-assign]
        await rig.start()
        await rx.wait_for(lambda: {"call.missed", "text.sent"} <= {
            r.json["event"] for r in rx.accepted})
        assert await rig.stop() == 0
        by_event = {r.json["event"]: r for r in rx.accepted}
        assert by_event["call.missed"].json["data"]["call"]["caller"] == "+15551230002"
        assert by_event["text.sent"].json["data"]["text"]["number"] == "+15551230002"
        assert by_event["text.sent"].json["data"]["latency_s"] is not None
        for r in rx.accepted:
            assert verify(SECRET, r.body, r.headers[SIGNATURE_HEADER])


def test_an_opt_out_from_the_cli_is_queued_for_the_daemons_delivery_loop(
        tmp_path: Path) -> None:
    from textback.cli import main

    path = tmp_path / "textback.toml"
    path.write_text(config_toml(tmp_path, webhook=[{"url": "https://crm.example/h",
                                                    "secret": SECRET}]))
    os.chmod(path, 0o600)
    assert main(["optout", "add", "+15551230077", "--config", str(path)]) == 0
    assert main(["optout", "remove", "+15551230077", "--config", str(path)]) == 0

    async def queued() -> list[dict[str, Any]]:
        store = await Store.open(tmp_path / "textback.db")
        try:
            return [json.loads(r["body"]) for r in await store.fetchall(
                "SELECT body FROM webhook_deliveries WHERE state = 'queued' ORDER BY id")]
        finally:
            await store.close()
    bodies = asyncio.run(queued())
    assert [(b["event"], b["data"]["number"], b["data"]["source"]) for b in bodies] == [
        ("optout", "+15551230077", "cli"), ("optin", "+15551230077", "cli")]


async def test_an_opt_out_decided_by_staff_is_an_optout_event(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        office = Office(store, hook_config(tmp_path, {"url": "https://crm.example/h",
                                                      "events": ["optout"]}), clock)
        office.inbound.staff.reviews.hooks = office.hub
        await office.inbound.receive(number=CALLER, text="I want to cancel", did=DID,
                                     via="modem:a", at=NOW)
        code = await store.fetchone("SELECT code FROM conversations")
        assert code is not None
        assert await store.fetchall("SELECT * FROM webhook_deliveries") == []  # held only
        await office.inbound.receive(number=STAFF, text=f"{code['code']} OPTOUT", did=DID,
                                     via="modem:a", at=NOW + 300)
        (row,) = await store.fetchall("SELECT body FROM webhook_deliveries")
        data = json.loads(row["body"])["data"]
        assert data["number"] == CALLER and data["source"] == "staff-review"


async def test_a_slow_hooks_backlog_never_hides_another_hooks_events(tmp_path: Path) -> None:
    clock = Clock()
    async with receiver(script=[HOLD]) as slow, receiver() as fast, opened(tmp_path) as store:
        config = hook_config(tmp_path, {"url": slow.url, "events": ["optout"]},
                             {"url": fast.url, "events": ["optin"]})
        hub = Webhooks(config.webhooks, clock=clock, store=store)
        delivery = WebhookDelivery(store, config.webhooks, clock=clock, hub=hub)
        for n in range(40):  # more than one read's worth of the slow hook's rows, first
            await hub.emit("optout", f"message:{n}", {"n": n}, at=NOW)
        await hub.emit("optin", "message:99", {"n": 99}, at=NOW)
        async with running(delivery.run()):
            await fast.wait_for(lambda: len(fast.accepted) == 1)
            assert slow.holding == 2  # its two slots, still hanging
            assert slow.accepted == []
