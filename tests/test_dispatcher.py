"""Dispatcher: one text per sender at a time, failover, retry, handover, drain."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.daemon_fakes import DID, NOW, Clock, FakeSender, lab_gate, opened, permanent, transient
from textback.modem.driver import PartResult, SendFailed
from textback.modem.errors import CommandTimeout
from textback.modem.sender import ModemSender
from textback.outbound.dispatcher import Dispatcher
from textback.outbound.outbox import Outbox
from textback.sender import SendResult
from textback.store import Store


async def queue(outbox: Outbox, n: int = 1, *, senders: tuple[str, ...] = ("modem:a", "sip")
                ) -> list[int]:
    ids = []
    for i in range(n):
        r = await outbox.enqueue(call_id=f"c{i}", kind="textback", number=f"+1555200000{i}",
                                 did=DID, body=f"text {i}", senders=senders, not_before=NOW,
                                 now=NOW)
        ids.append(r.id)
    return ids


async def settle(d: Dispatcher) -> None:
    """Let started sends finish."""
    for _ in range(50):
        await asyncio.sleep(0)
        if not d.in_flight:
            break
    while d._tasks:  # the tasks the pump started
        await asyncio.wait(set(d._tasks))


async def row(store: Store, item_id: int) -> dict[str, Any]:
    r = await store.fetchone("SELECT * FROM outbox WHERE id = ?", (item_id,))
    assert r is not None
    return dict(r)


def setup(store: Store, clock: Clock, **kw: Any
          ) -> tuple[Outbox, FakeSender, FakeSender, Dispatcher]:
    outbox = Outbox(store, config=lab_gate(), retry_base_s=30.0)
    modem, sip = FakeSender("modem:a"), FakeSender("sip")
    d = Dispatcher(outbox, {"modem:a": modem, "sip": sip}, clock=clock, **kw)
    return outbox, modem, sip, d


async def test_sends_each_row_once_one_at_a_time_per_sender(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, sip, d = setup(store, clock)
        ids = await queue(outbox, 3)
        for _ in range(5):
            await d.pump()
            await settle(d)
        assert [c[0] for c in modem.calls] == ["+15552000000", "+15552000001", "+15552000002"]
        assert modem.max_active == 1 and sip.calls == []
        for i in ids:
            r = await row(store, i)
            assert (r["state"], r["sent_by"]) == ("sent", "modem:a")


async def test_permanent_error_moves_to_next_sender(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, sip, d = setup(store, clock)
        modem.script = [permanent("modem:a")]
        (i,) = await queue(outbox)
        await d.pump()
        await settle(d)
        await d.pump()
        await settle(d)
        assert len(modem.calls) == 1 and len(sip.calls) == 1
        r = await row(store, i)
        assert (r["state"], r["sent_by"]) == ("sent", "sip")


async def test_transient_error_retries_later_on_same_sender(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, sip, d = setup(store, clock)
        modem.script = [transient("modem:a")]
        (i,) = await queue(outbox)
        await d.pump()
        await settle(d)
        r = await row(store, i)
        assert r["state"] == "queued" and r["not_before"] == NOW + 30.0
        assert await d.pump() == 0  # not before the backoff
        clock.t += 30
        await d.pump()
        await settle(d)
        assert len(modem.calls) == 2 and sip.calls == []
        assert (await row(store, i))["sent_by"] == "modem:a"


async def test_unavailable_sender_hands_rows_over_after_a_while(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, sip, d = setup(store, clock, handover_after_s=30.0)
        modem.up = False
        (i,) = await queue(outbox)
        assert await d.pump() == 0  # modem away: wait, it may come back
        clock.t += 10
        assert await d.pump() == 0
        assert (await row(store, i))["state"] == "queued"
        clock.t += 25
        await d.pump()
        await settle(d)
        assert modem.calls == [] and len(sip.calls) == 1
        r = await row(store, i)
        assert (r["state"], r["sent_by"]) == ("sent", "sip")
        assert r["sender_index"] == 1


async def test_only_sender_away_keeps_the_text_waiting(tmp_path: Path) -> None:
    """No sender left to hand over to (one modem, SIM locked or unplugged): the text is not
    failed, it waits and goes when the modem is back."""
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, sip, d = setup(store, clock, handover_after_s=30.0)
        modem.up = False
        (i,) = await queue(outbox, senders=("modem:a",))
        await d.pump()
        clock.t += 31
        await d.pump()
        r = await row(store, i)
        assert r["state"] == "queued" and r["attempts"] == 0 and "waiting" in r["last_error"]
        clock.t += 600
        await d.pump()
        assert (await row(store, i))["state"] == "queued"
        modem.up = True
        clock.t += 31
        await d.pump()
        await settle(d)
        assert len(modem.calls) == 1 and sip.calls == []
        assert (await row(store, i))["state"] == "sent"


async def test_modem_back_in_time_keeps_its_rows(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, sip, d = setup(store, clock, handover_after_s=30.0)
        modem.up = False
        await queue(outbox)
        await d.pump()
        clock.t += 20
        modem.up = True
        await d.pump()
        await settle(d)
        assert len(modem.calls) == 1 and sip.calls == []


async def test_partial_multipart_is_unconfirmed_and_not_resent(tmp_path: Path) -> None:
    """Part 1 of 2 went, part 2 failed: through the real ModemSender mapping, the row is
    recorded sent-unconfirmed with part 1's reference and never sent again."""

    class Supervisor:
        calls = 0

        def available(self) -> bool:
            return True

        async def send(self, number: str, text: str, *, status_report: bool = True,
                       on_commit: Any = None) -> Any:
            self.calls += 1
            if on_commit is not None:
                await on_commit()
            went = [PartResult(mr=17, part=1, parts=2, number=number, tpdu_length=140,
                               sent_at=NOW)]
            raise SendFailed(CommandTimeout("AT+CMGS", 60), went)

    clock = Clock()
    async with opened(tmp_path) as store:
        outbox = Outbox(store, config=lab_gate())
        sup = Supervisor()
        sip = FakeSender("sip")
        d = Dispatcher(outbox, {"modem:a": ModemSender(sup, "modem:a"),  # type: ignore[arg-type]
                                "sip": sip}, clock=clock)
        (i,) = await queue(outbox)
        for _ in range(3):
            await d.pump()
            await settle(d)
            clock.t += 3600
        assert sup.calls == 1 and sip.calls == []
        r = await row(store, i)
        assert r["state"] == "sent"
        msg = await store.fetchone("SELECT status, parts FROM messages WHERE outbox_id = ?",
                                   (i,))
        assert msg is not None and msg["status"] == "sent-unconfirmed"
        parts = await store.fetchall("SELECT mr FROM message_parts")
        assert [p["mr"] for p in parts] == [17]


async def test_unconfirmed_result_recorded_as_such(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, _, d = setup(store, clock)
        modem.script = [SendResult("modem:a", parts=2, refs=[3], confirmed=False)]
        (i,) = await queue(outbox)
        await d.pump()
        await settle(d)
        msg = await store.fetchone("SELECT status FROM messages WHERE outbox_id = ?", (i,))
        assert msg is not None and msg["status"] == "sent-unconfirmed"


async def test_stop_waits_for_the_text_in_flight_and_starts_nothing_new(tmp_path: Path
                                                                         ) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, sip, d = setup(store, clock)
        modem.gate = asyncio.Event()
        sip.up = False
        ids = await queue(outbox, 2)
        assert await d.pump() == 1
        assert d.in_flight == 1
        stopping = asyncio.create_task(d.stop(drain_timeout_s=5))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # SIGTERM waits for the modem
        modem.gate.set()
        assert await stopping == 0
        assert (await row(store, ids[0]))["state"] == "sent"
        assert await d.pump() == 0
        assert (await row(store, ids[1]))["state"] == "queued"  # resumes after restart
        assert len(modem.calls) == 1


async def test_run_sends_when_woken_and_when_due(tmp_path: Path) -> None:
    clock = Clock()
    async with opened(tmp_path) as store:
        outbox, modem, _, d = setup(store, clock)
        task = asyncio.create_task(d.run())
        await queue(outbox)
        d.wake()
        async with asyncio.timeout(5):
            while not modem.calls:
                await asyncio.sleep(0.01)
        await d.stop()
        task.cancel()
        assert modem.calls[0][0] == "+15552000000"


async def test_unexpected_sender_error_never_leaves_the_row_sending(tmp_path: Path) -> None:
    """A bug in a sender (any exception) is a transient failure before the hand-over, and
    sent-unconfirmed (never resent) after it."""

    class Buggy(FakeSender):
        def __init__(self, name: str, after_commit: bool) -> None:
            super().__init__(name)
            self.after_commit = after_commit

        async def send(self, number: str, text: str, *, status_report: bool = True,
                       did: str | None = None, on_commit: Any = None) -> Any:
            self.calls.append((number, text))
            if self.after_commit and on_commit is not None:
                await on_commit()
            raise RuntimeError("out of step")

    for after_commit, state in ((False, "queued"), (True, "sent")):
        clock = Clock()
        async with opened(tmp_path / str(after_commit)) as store:
            outbox = Outbox(store, config=lab_gate())
            d = Dispatcher(outbox, {"modem:a": Buggy("modem:a", after_commit)}, clock=clock)
            (i,) = await queue(outbox, senders=("modem:a",))
            await d.pump()
            await settle(d)
            r = await row(store, i)
            assert r["state"] == state
            if not after_commit:
                assert "unexpected RuntimeError: out of step" in r["last_error"]
            else:
                msg = await store.fetchone("SELECT status FROM messages WHERE outbox_id = ?",
                                           (i,))
                assert msg is not None and msg["status"] == "sent-unconfirmed"
