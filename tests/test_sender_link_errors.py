"""A dead PBX link never loses a text (issue 12, finding 6).

The PBX senders (Asterisk ``MessageSend`` over AMI, FreeSWITCH ``chat`` over ESL) must turn a
link that is down *before the action is written* into a transient ``SendError`` raised
before ``on_commit`` (the point of no return), so the dispatcher retries the text or hands
it to the next sender. Before the fix, ``AmiError``/``EslError`` escaped the senders after
``on_commit`` had run, and the dispatcher recorded the text ``sent-unconfirmed`` for good.

The links here are real clients (``AmiClient``, ``EslClient``) against the replaying fake
PBX servers; the link is dropped right after the dispatcher claimed the row, the one
window the sender's ``available()`` check cannot close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ASTERISK_TRACES
from tests.daemon_fakes import DID, NOW, Clock, FakeSender, lab_gate, opened
from textback.outbound.dispatcher import Dispatcher
from textback.outbound.outbox import Outbox
from textback.pbx.asterisk.client import AmiClient, AmiError
from textback.pbx.asterisk.message_send import AmiMessageSender
from textback.pbx.freeswitch.chat_sender import EslChatSender
from textback.pbx.freeswitch.client import EslClient, EslError
from textback.sender import SendError
from textback.testing.fake_ami import FakeAmi
from textback.testing.fake_esl import NO_REPLY, Delayed, FakeEslServer

SECRET = "textback-lab-secret"
NUMBER = "+15552000000"


async def until(cond: Any, what: str) -> None:
    """Await a state change of a real socket (bounded, so a regression fails, not hangs)."""
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def _row(store: Any, item_id: int) -> dict[str, Any]:
    r = await store.fetchone("SELECT * FROM outbox WHERE id = ?", (item_id,))
    assert r is not None
    return dict(r)


async def _pump_until_idle(d: Dispatcher) -> None:
    await d.pump()
    while d._tasks:
        await asyncio.wait(set(d._tasks))


@asynccontextmanager
async def esl_link(handler: Any) -> AsyncIterator[tuple[FakeEslServer, EslClient]]:
    """A real EslClient logged in to the fake FreeSWITCH answering ``api`` through
    ``handler``; both torn down after."""
    server = FakeEslServer([], api_handler=handler)
    await server.start()
    client = EslClient("127.0.0.1", server.port, "ClueCon")
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.connected.wait(), 5)
        yield server, client
    finally:
        client.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await server.close()


# --------------------------------------------------------------------------- unit level

async def test_ami_link_down_is_transient_and_nothing_is_committed() -> None:
    client = AmiClient("127.0.0.1", 1, "textback", SECRET)  # never connected
    sender = AmiMessageSender(lambda a: client.send_action(a, timeout=0.2),
                              destination="pjsip:trunk/sip:{number}@h", from_uri="x",
                              is_connected=client.logged_in.is_set)
    committed: list[bool] = []

    async def commit() -> None:
        committed.append(True)

    with pytest.raises(SendError) as info:
        await sender.send(NUMBER, "hi", on_commit=commit)
    assert not info.value.permanent and "AMI link" in info.value.reason
    assert committed == []  # refused before the point of no return


async def test_ami_action_never_written_is_transient_even_after_commit() -> None:
    """The link dropped while ``on_commit`` ran: nothing was written, so it is no send."""
    client = AmiClient("127.0.0.1", 1, "textback", SECRET)
    sender = AmiMessageSender(lambda a: client.send_action(a, timeout=0.05),
                              destination="pjsip:trunk/sip:{number}@h", from_uri="x")
    with pytest.raises(SendError) as info:
        await sender.send(NUMBER, "hi")
    assert not info.value.permanent


async def test_ami_link_lost_after_the_write_is_unconfirmed_not_resent() -> None:
    async def lost(action: dict[str, str]) -> dict[str, Any]:
        raise AmiError("AMI connection lost")  # what AmiClient fails a written action with

    sender = AmiMessageSender(lost, destination="pjsip:trunk/sip:{number}@h", from_uri="x")
    result = await sender.send(NUMBER, "hi")
    assert result.confirmed is False and "AMI connection lost" in result.detail


async def test_esl_link_down_is_transient_and_nothing_is_committed() -> None:
    client = EslClient("127.0.0.1", 1, "ClueCon")  # never connected
    sender = EslChatSender(client, destination="external/sip:{number}@carrier",
                           from_uri="{did}@pbx")
    committed: list[bool] = []

    async def commit() -> None:
        committed.append(True)

    with pytest.raises(SendError) as info:
        await sender.send(NUMBER, "hi", did=DID, on_commit=commit)
    assert not info.value.permanent and "ESL link" in info.value.reason
    assert committed == []


async def test_esl_connection_closed_after_the_write_is_unconfirmed() -> None:
    class Closed:
        connected = asyncio.Event()

        async def api(self, cmd: str, timeout: float = 10.0) -> str:
            raise EslError("connection closed")  # EslClient._fail_pending after the write

    Closed.connected.set()
    sender = EslChatSender(Closed(), destination="external/sip:{number}@carrier",  # type: ignore[arg-type]
                           from_uri="{did}@pbx")
    result = await sender.send(NUMBER, "hi", did=DID)
    assert result.confirmed is False and "connection closed" in result.detail


# --------------------------------------------------------------------- dispatcher level

async def _dispatch_over_dead_link(tmp_path: Path, sip: Any, drop: Any
                                   ) -> tuple[dict[str, Any], FakeSender]:
    """Queue one text for ("sip", "modem:a"); the link drops just after the claim."""
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox = Outbox(store, retry_base_s=30.0, config=lab_gate())
        modem = FakeSender("modem:a")
        d = Dispatcher(outbox, {"sip": sip, "modem:a": modem}, clock=clock,
                       handover_after_s=30.0)
        claim = outbox.claim_next
        dropped: list[bool] = []

        async def claim_then_drop(*a: Any, **kw: Any) -> Any:
            item = await claim(*a, **kw)
            if item is not None and item.sender == "sip" and not dropped:
                dropped.append(True)
                await drop()
            return item

        outbox.claim_next = claim_then_drop  # type: ignore[method-assign]
        queued = await outbox.enqueue(call_id="c1", kind="textback", number=NUMBER, did=DID,
                                      body="Sorry we missed your call", senders=("sip",
                                                                                 "modem:a"),
                                      not_before=NOW, now=NOW)
        await _pump_until_idle(d)
        first = await _row(store, queued.id)
        assert first["state"] == "queued", first  # not sent-unconfirmed: it never left
        clock.t += 31  # the PBX stays away past handover_after_s: the modem takes it
        await _pump_until_idle(d)
        await _pump_until_idle(d)
        return await _row(store, queued.id), modem


async def test_dead_ami_link_text_goes_out_once_by_the_modem(tmp_path: Path) -> None:
    server = FakeAmi.from_capture(ASTERISK_TRACES / "direct-answered.ami.ts", secret=SECRET)
    host, port = await server.start()
    client = AmiClient(host, port, "textback", SECRET, backoff_initial=0.05,
                       backoff_max=0.1, connect_timeout=1.0)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.logged_in.wait(), 5)
        sip = AmiMessageSender(lambda a: client.send_action(a, timeout=0.5),
                               destination="pjsip:trunk/sip:{number}@127.0.0.1:5180",
                               from_uri="sip:{did}@127.0.0.1",
                               is_connected=client.logged_in.is_set)  # as the daemon wires it

        async def drop() -> None:
            await server.close()  # the PBX is gone: no reconnect either
            writer = client._writer
            assert writer is not None
            writer.transport.abort()  # the TCP link dies under the client
            await until(lambda: not client.logged_in.is_set(), "AMI link seen down")

        row, modem = await _dispatch_over_dead_link(tmp_path, sip, drop)
    finally:
        client.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        await server.close()
    assert server.sent == []
    assert modem.calls == [(NUMBER, "Sorry we missed your call")]
    assert (row["state"], row["sent_by"]) == ("sent", "modem:a")


async def test_dead_esl_link_text_goes_out_once_by_the_modem(tmp_path: Path) -> None:
    chats: list[str] = []

    def handler(cmd: str) -> str | None:
        if cmd.startswith("chat "):
            chats.append(cmd)
            return "Sent"
        return None

    async with esl_link(handler) as (server, client):
        sip = EslChatSender(client, destination="external/sip:{number}@carrier",
                            from_uri="{did}@pbx")

        async def drop() -> None:
            await server.close()  # closes the client's socket and stops listening
            await until(lambda: not client.connected.is_set(), "ESL link seen down")

        row, modem = await _dispatch_over_dead_link(tmp_path, sip, drop)
    assert chats == []
    assert modem.calls == [(NUMBER, "Sorry we missed your call")]
    assert (row["state"], row["sent_by"]) == ("sent", "modem:a")


# ------------------------------------------- written, then no answer: never sent twice
async def test_esl_chat_unanswered_after_the_write_is_unconfirmed_and_never_resent(
        tmp_path: Path) -> None:
    """FreeSWITCH took the ``api chat`` line and gave no reply in time (sofia still
    waiting on a far end that answers late, a stalled switch). The MESSAGE may have gone:
    the text is sent-unconfirmed, never resent and never handed to the modem as well.
    Before the fix the reply timeout was a transient error: the same text went again."""
    chats: list[str] = []

    def handler(cmd: str) -> str | None:
        if cmd.startswith("chat "):
            chats.append(cmd)
            return NO_REPLY
        return None

    clock = Clock()
    async with esl_link(handler) as (_, client):
        sip = EslChatSender(client, destination="external/sip:{number}@carrier",
                            from_uri="{did}@pbx", timeout_s=0.2)
        async with opened(tmp_path) as store:
            outbox = Outbox(store, retry_base_s=30.0, config=lab_gate())
            modem = FakeSender("modem:a")
            d = Dispatcher(outbox, {"sip": sip, "modem:a": modem}, clock=clock,
                           handover_after_s=30.0)
            queued = await outbox.enqueue(
                call_id="c1", kind="textback", number=NUMBER, did=DID,
                body="Sorry we missed your call", senders=("sip", "modem:a"),
                not_before=NOW, now=NOW)
            await _pump_until_idle(d)
            for _ in range(3):  # past every retry and hand-over time
                clock.t += 3600
                await _pump_until_idle(d)
            row = await _row(store, queued.id)
            message = await store.fetchone("SELECT status FROM messages WHERE outbox_id = ?",
                                           (queued.id,))
    assert len(chats) == 1 and modem.calls == []
    assert (row["state"], row["sent_by"]) == ("sent", "sip")
    assert message is not None and message["status"] == "sent-unconfirmed"


async def test_esl_reply_timeout_is_a_link_error_and_its_late_reply_is_nobody_else_s() -> None:
    """Every ESL command (resync, ping, originate, chat): written and not answered in time
    raises EslError, which every caller handles, not a bare TimeoutError. When the reply
    comes after all, it is that command's: the next command gets its own reply (before
    the fix the late reply went to the next waiter, and every reply after it was one off)."""
    async with esl_link(lambda cmd: Delayed(0.3, "late answer") if cmd == "slow"
                        else None) as (server, client):
        await until(lambda: server.commands[-1:] == ["api show calls as json"], "resync")
        with pytest.raises(EslError, match=r"no reply to api slow in 0\.1 s"):
            await client.api("slow", timeout=0.1)
        assert (await client.api("status")).startswith("UP")  # not "late answer"
        assert (await client.api("nope")).startswith("-ERR nope")
