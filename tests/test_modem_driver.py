"""The asyncio driver end to end against the pty simulator (timing scaled to 0)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from textback.modem.driver import DeliveryReport, ModemDriver, PartResult, SendFailed
from textback.modem.errors import (
    CommandTimeout,
    ModemError,
    ModemLost,
    PortError,
    SimUnavailable,
    SubmitUnconfirmed,
)
from textback.modem.pdu import PduError
from textback.modem.reassembly import InboundMessage
from textback.testing.modem_simulator import ModemSimulator
from textback.testing.modem_simulator.host import NOISE


async def _wait(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def _open(sim: ModemSimulator, **kw: object) -> ModemDriver:
    d = ModemDriver(sim.port, command_timeout=2.0, **kw)  # type: ignore[arg-type]
    await d.open()
    return d


@pytest.mark.parametrize("profile", ["sim800l", "sim7600", "sim7670", "ec25", "e3372", "e173",
                                     "generic"])
async def test_send_every_dialect_with_reports(profile: str, tmp_path: Path) -> None:
    async with ModemSimulator(profile, link=tmp_path / "modem") as sim:
        d = await _open(sim)
        reports: list[DeliveryReport] = []

        async def on_report(r: DeliveryReport) -> None:
            reports.append(r)

        d.report_handlers.append(on_report)
        info = await d.initialise()
        assert info.problems == [] and info.model == sim.profile.model
        assert info.report_mode == ("+CDS" if profile == "sim800l" else "+CDSI")
        parts = await d.send("+447700900123", "x" * 300)
        assert [p.part for p in parts] == [1, 2] and len(sim.accepted) == 2
        assert "".join(a.decoded.text or "" for a in sim.accepted) == "x" * 300
        await _wait(lambda: len(reports) == 2)
        assert {r.mr for r in reports} == {p.mr for p in parts}
        assert all(r.part is not None and r.category == "delivered" for r in reports)
        assert sim.engine.storage.get("SR", {}) == {}  # read reports are deleted
        await d.close()


@pytest.mark.parametrize(("text", "encoding", "count"), [
    ("Sorry we missed your call. Call back on 0161 496 0000 [office]", "gsm7", 1),
    ("Désolé, nous avons manqué votre appel — rappelez-nous", "ucs2", 1),
    ("We missed you 😀📞 call back", "ucs2", 1),
    ("€" * 100 + "a" * 160, "gsm7", 3),
])
async def test_send_encodings(text: str, encoding: str, count: int, tmp_path: Path) -> None:
    async with ModemSimulator("sim7600") as sim:
        d = await _open(sim)
        await d.initialise()
        parts = await d.send("+447700900123", text, status_report=False)
        assert len(parts) == count == len(sim.accepted)
        got = "".join(a.decoded.text or "" for a in sim.accepted)
        assert got == text
        assert {a.decoded.encoding for a in sim.accepted} == {encoding}
        assert all(a.decoded.number == "+447700900123" for a in sim.accepted)
        assert sim.engine.text_mode_sends == []
        await d.close()


@pytest.mark.parametrize("number", ["+4477\r\nAT+CMGD=1,4", "123\x1a", "\x1b123", "+44 7700",
                                    "07700;ATH"])
async def test_hostile_number_never_reaches_the_line(number: str) -> None:
    async with ModemSimulator("generic") as sim:
        d = await _open(sim)
        await d.initialise()
        before = list(sim.engine.commands)
        with pytest.raises(PduError):
            await d.send(number, "hi")
        assert sim.engine.commands == before
        await d.close()


async def test_hostile_text_goes_as_pdu_only() -> None:
    text = "hi\r\nAT+CMGD=1,4\r\x1a\x1bATD123;\r"
    async with ModemSimulator("sim800l") as sim:
        d = await _open(sim)
        await d.initialise()
        await d.send("+447700900123", text, status_report=False)
        assert sim.accepted[0].decoded.text == text
        sent = [c for c in sim.engine.commands if "CMGD" in c or "ATD" in c]
        assert sent == []
        await d.close()


async def test_receive_stored_single_and_multipart_then_delete(tmp_path: Path) -> None:
    async with ModemSimulator("ec25") as sim:
        d = await _open(sim)
        got: list[InboundMessage] = []

        async def store(m: InboundMessage) -> None:
            # the parts are still on the SIM while we store
            assert all(idx in sim.engine.storage[mem] for mem, idx in m.locations)
            got.append(m)

        d.message_handlers.append(store)
        await d.initialise()
        sim.inject_sms("+447700900555", "call me back")
        long = "Please call me back about the quote 😀 " * 6
        pdus = sim.inject_sms("+447700900666", long)
        await _wait(lambda: len(got) == 2)
        assert got[0].text == "call me back" and got[0].number == "+447700900555"
        assert got[1].text == long and got[1].complete and got[1].parts == len(pdus) == 4
        await _wait(lambda: sim.engine.storage["SM"] == {})
        await d.close()


async def test_handler_failure_keeps_message_on_sim() -> None:
    async with ModemSimulator("generic") as sim:
        d = await _open(sim)

        async def broken(m: InboundMessage) -> None:
            raise RuntimeError("disk full")

        d.message_handlers.append(broken)
        await d.initialise()
        sim.inject_sms("+447700900555", "keep me")
        await asyncio.sleep(0.3)
        assert len(sim.engine.storage["SM"]) == 1
        await d.close()


async def test_messages_already_on_sim_are_read_at_start() -> None:
    async with ModemSimulator("sim7600") as sim:
        sim.inject_sms("+447700900555", "arrived while we were down")  # CNMI still 0: silent
        assert len(sim.engine.storage["SM"]) == 1
        d = await _open(sim)
        got: list[InboundMessage] = []

        async def store(m: InboundMessage) -> None:
            got.append(m)

        d.message_handlers.append(store)
        await d.initialise()
        await _wait(lambda: len(got) == 1)
        assert got[0].text == "arrived while we were down"
        await _wait(lambda: sim.engine.storage["SM"] == {})
        await d.close()


async def test_direct_cmt_delivery() -> None:
    async with ModemSimulator("generic") as sim:
        d = await _open(sim)
        got: list[InboundMessage] = []

        async def store(m: InboundMessage) -> None:
            got.append(m)

        d.message_handlers.append(store)
        await d.initialise()
        sim.inject_sms("+447700900555", "direct", direct=True)
        await _wait(lambda: len(got) == 1)
        assert got[0].text == "direct" and got[0].locations == ()
        await d.close()


async def test_multipart_timeout_delivers_what_arrived() -> None:
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, reassembly_timeout=0.2)
        got: list[InboundMessage] = []

        async def store(m: InboundMessage) -> None:
            got.append(m)

        d.message_handlers.append(store)
        await d.initialise()
        pdus = sim.engine.inject_sms("+447700900555", "y" * 400)  # 3 parts stored
        # lose part 2 before the driver reads it: the network never delivered it
        sim.engine.storage["SM"].pop(1)
        sim._flush()
        assert len(pdus) == 3
        await _wait(lambda: len(got) == 1, 5.0)
        assert not got[0].complete and got[0].missing == (2,) and got[0].received == 2
        await d.close()


async def test_no_network_is_transient_and_nothing_is_handed() -> None:
    """Not registered: the send is refused before AT+CMGS (transient, retried), because the
    modem would take the PDU and answer +CMS ERROR: 500 after its Ctrl-Z (E3531, gammu
    #438), which proves nothing and would leave the text unconfirmed (issue 12)."""
    async with ModemSimulator("e3372") as sim:
        sim.set_network(False)
        d = await _open(sim)
        info = await d.initialise()
        assert any("not registered" in p for p in info.problems)
        with pytest.raises(SendFailed) as exc:
            await d.send("+447700900123", "hello")
        assert exc.value.transient and "not registered" in str(exc.value)
        assert exc.value.sent == [] and not any("CMGS" in c for c in sim.engine.commands)
        sim.set_network(True)
        assert len(await d.send("+447700900123", "hello")) == 1
        await d.close()


async def test_sim_pin_required_and_entered() -> None:
    async with ModemSimulator("sim800l", pin="1234") as sim:
        d = await _open(sim)
        info = await d.initialise()
        assert info.sim == "SIM PIN" and any("pin" in p for p in info.problems)
        await d.close()
        d = await _open(sim, pin="1234")
        info = await d.initialise()
        assert info.sim == "READY" and info.problems == []
        await d.send("+447700900123", "ok now")
        await d.close()


async def test_wrong_pin_is_reported() -> None:
    async with ModemSimulator("generic", pin="1234") as sim:
        d = await _open(sim, pin="9999")
        info = await d.initialise()
        assert any("refused" in p for p in info.problems)
        await d.close()


async def test_hang_times_out_then_recovers() -> None:
    async with ModemSimulator("generic") as sim:
        d = await _open(sim)
        await d.initialise()
        sim.hang(0.5)
        with pytest.raises(CommandTimeout):
            await d.command("AT+CSQ", timeout=0.2)
        await asyncio.sleep(0.4)
        assert await d.command("AT+CSQ") == ("+CSQ: 20,99",)
        await d.close()


async def test_garbled_bytes_do_not_break_the_driver() -> None:
    async with ModemSimulator("generic") as sim:
        d = await _open(sim)
        await d.initialise()
        sim.garble(b"\r\n\xff\xfe\x00garbage\x1b[0m\r\n")
        await asyncio.sleep(0.05)
        parts = await d.send("+447700900123", "still fine", status_report=False)
        assert len(parts) == 1 and d.session.stats.garbled >= 1
        await d.close()


async def test_modem_killed_mid_send() -> None:
    async with ModemSimulator("generic", time_scale=0.05) as sim:  # +CMGS after ~125 ms
        d = await _open(sim)
        await d.initialise()
        task = asyncio.create_task(d.send("+447700900123", "z" * 400, status_report=False))
        await _wait(lambda: len(sim.accepted) >= 1)
        sim.disappear()
        with pytest.raises(SendFailed) as exc:
            await task
        cause = exc.value.cause
        # lost after a part's Ctrl-Z went: that part is handed (mr None), never resent
        if isinstance(cause, SubmitUnconfirmed):
            cause = cause.cause
            assert exc.value.sent[-1].mr is None
        assert isinstance(cause, ModemLost)
        assert len([p for p in exc.value.sent if p.mr is not None]) <= 1
        assert d.lost.is_set()
        await d.close()


async def test_port_errors_name_the_fix(tmp_path: Path) -> None:
    d = ModemDriver(str(tmp_path / "nope"))
    with pytest.raises(PortError) as exc:
        await d.open()
    assert "by-id" in str(exc.value)
    locked = tmp_path / "locked"
    locked.write_text("")
    locked.chmod(0)
    d = ModemDriver(str(locked))
    with pytest.raises(PortError) as exc:
        await d.open()
    import os
    if os.geteuid() != 0:
        assert "dialout" in str(exc.value)


async def test_on_commit_runs_once_at_the_first_prompt(tmp_path: Path) -> None:
    """The point of no return is the first part's Ctrl-Z: on_commit runs there, once."""
    async with ModemSimulator("sim7600") as sim:
        drv = await _open(sim)
        await drv.initialise()
        seen: list[int] = []

        async def commit() -> None:
            seen.append(len(sim.accepted))  # nothing accepted yet at the first prompt

        parts = await drv.send("+15551230001", "x" * 400, on_commit=commit)
        assert len(parts) == 3 and seen == [0] and len(sim.accepted) == 3
        await drv.close()


async def test_failed_commit_aborts_the_prompt_and_sends_nothing(tmp_path: Path) -> None:
    async with ModemSimulator("sim7600") as sim:
        drv = await _open(sim)
        await drv.initialise()

        async def refuse() -> None:
            raise RuntimeError("store unavailable")

        with pytest.raises(RuntimeError):
            await drv.send("+15551230001", "hello", on_commit=refuse)
        assert sim.accepted == []
        # the modem left its prompt (ESC): the next text goes through normally
        parts = await drv.send("+15551230002", "hello again")
        assert len(parts) == 1 and len(sim.accepted) == 1
        assert sim.accepted[0].decoded.number == "+15551230002"
        await drv.close()


async def test_send_without_a_sim_is_a_sim_problem_not_the_texts() -> None:
    """No SIM: the send is refused before any PDU (not registered, AT+CPIN? -> +CME ERROR:
    10): SimUnavailable (transient: the text waits), the health snapshot says "SIM not
    inserted" first, and the driver asks for a look at the SIM."""
    async with ModemSimulator("generic") as sim:
        d = await _open(sim)
        await d.initialise()
        sim.remove_sim()
        with pytest.raises(SendFailed) as exc:
            await d.send("+447700900123", "hello", status_report=False)
        assert isinstance(exc.value.cause, SimUnavailable) and exc.value.transient
        assert exc.value.sent == [] and sim.accepted == []
        assert d.info.problems[0] == "SIM not inserted (+CME ERROR: 10 to AT+CPIN?)"
        assert d.attention.is_set() and d.sim_absent
        info = await d.health()  # AT+CPIN? -> +CME ERROR: 10
        assert info.problems[0] == "SIM not inserted (+CME ERROR: 10 to AT+CPIN?)"
        assert not info.registered and not d.sim_returned
        sim.insert_sim()
        await d.health()
        assert d.sim_returned and not d.sim_absent
        info = await d.initialise()
        assert info.problems == [] and info.sim == "READY"
        assert len(await d.send("+447700900123", "back", status_report=False)) == 1
        await d.close()


async def test_late_answer_to_the_pdu_within_send_timeout_is_a_normal_send() -> None:
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, send_timeout=5.0)
        await d.initialise()
        sim.stall_after_pdu(0.8)
        parts = await d.send("+447700900123", "slow network", status_report=False)
        assert [p.mr for p in parts] == [0] and len(sim.accepted) == 1
        await d.close()


@pytest.mark.parametrize("late", [None, 2.0])
async def test_no_answer_to_the_pdu_is_unconfirmed_and_the_driver_resyncs(
        late: float | None) -> None:
    """The PDU went, its +CMGS never comes (or comes after send_timeout, 1 s here): the
    part is reported handed with mr None (never resend), a late answer is not taken for a
    later command's, and the next text goes with its own +CMGS."""
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, send_timeout=1.0)
        await d.initialise()
        sim.stall_after_pdu(late)
        with pytest.raises(SendFailed) as exc:
            await d.send("+447700900123", "first", status_report=False)
        assert isinstance(exc.value.cause, SubmitUnconfirmed)
        assert not exc.value.transient
        assert [p.mr for p in exc.value.sent] == [None] and len(sim.accepted) == 1
        if late is not None:
            await asyncio.sleep(late)  # the stray "+CMGS: 0 / OK" lands now
        assert await d.command("AT+CSQ") == ("+CSQ: 20,99",)
        parts = await d.send("+447700900124", "second", status_report=False)
        assert [p.mr for p in parts] == [1] and len(sim.accepted) == 2
        await d.close()


@pytest.mark.parametrize("left_in", ["prompt", "pdu-answer"])
async def test_initialise_after_a_killed_run_is_not_one_answer_behind(
        left_in: str) -> None:
    """A daemon killed at the AT+CMGS prompt (the ESC that opens initialise() gets an OK) or
    right after its PDU (the +CMGS answer comes to the next run): those answers land before
    the first command, so AT+CPIN? gets its own +CPIN: line, not a stray OK read as "SIM not
    ready" (which kept the modem unavailable in the 1000-kill soak)."""
    async with ModemSimulator("generic", time_scale=0.02) as sim:
        first = await _open(sim)
        await first.initialise()
        if left_in == "prompt":
            first._write(b"AT+CMGS=20\r")  # the prompt comes; the run dies before the PDU
        else:
            sim.stall_after_pdu(0.1)
            sending = asyncio.create_task(first.send("+447700900123", "x",
                                                     status_report=False))
            await _wait(lambda: len(sim.accepted) == 1)
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        await first.close()
        again = await _open(sim)
        info = await again.initialise()
        assert info.sim == "READY" and not any(p.startswith("SIM") for p in info.problems)
        assert again.setup_done and info.model == "GSM Modem"
        parts = await again.send("+447700900124", "after the restart", status_report=False)
        assert len(parts) == 1 and sim.accepted[-1].decoded.number == "+447700900124"
        await again.close()


async def test_a_sim_ready_late_finishes_set_up_at_the_next_health_check() -> None:
    """Set-up stopped at the SIM (here: no SIM yet) and the SIM then answers READY: the
    health check asks the supervisor to initialise again (sim_returned), rather than
    leaving the modem degraded by a stale SIM problem for good."""
    async with ModemSimulator("generic") as sim:
        sim.remove_sim()
        d = await _open(sim)
        info = await d.initialise()
        assert not d.setup_done and any(p.startswith("SIM") for p in info.problems)
        sim.insert_sim()
        await d.health()
        assert d.sim_returned
        info = await d.initialise()
        assert d.setup_done and not any(p.startswith("SIM") for p in info.problems)
        await d.close()


# ---------------------------------------------------------------- after the Ctrl-Z (issue 12)
# Line noise between the Ctrl-Z and the real "+CMGS: <mr>" must never make the same text go
# twice. ``_send_as_the_outbox_would`` retries exactly when the outbox would (a transient
# failure with no part handed over); the simulator's ``accepted`` counts the copies the
# network took.


async def _send_as_the_outbox_would(d: ModemDriver, number: str, text: str,
                                    attempts: int = 4) -> list[PartResult] | ModemError:
    """The parts, or the error the outbox would stop at (or the last after ``attempts``)."""
    error: ModemError | None = None
    for _ in range(attempts):
        try:
            return await d.send(number, text, status_report=False)
        except SendFailed as exc:
            error = exc
            if not exc.transient or exc.sent:
                break
        except ModemError as exc:
            error = exc
    assert error is not None
    return error


@pytest.mark.parametrize("noise", ["stray-ok", "garbage-then-ok", "bare-error"])
async def test_noise_after_ctrl_z_then_the_real_cmgs_is_one_copy(noise: str) -> None:
    """The noise comes, then the real "+CMGS: 0 / OK": one copy on the air, and the text is
    sent with its reference (the stray OK / garbage is not the answer; after a bare ERROR
    the late +CMGS is matched while the driver resynchronises)."""
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, send_timeout=2.0)
        await d.initialise()
        sim.noise_after_pdu(NOISE[noise], count=4)
        parts = await _send_as_the_outbox_would(d, "+447700900123", "once only")
        assert len(sim.accepted) == 1, f"{len(sim.accepted)} copies on the air"
        assert isinstance(parts, list) and [p.mr for p in parts] == [0], parts
        # the modem is in step: the next text gets its own answer
        parts = await d.send("+447700900124", "next", status_report=False)
        assert [p.mr for p in parts] == [1] and len(sim.accepted) == 2
        await d.close()


@pytest.mark.parametrize("noise", ["stray-ok", "garbage-then-ok", "bare-error"])
async def test_noise_after_ctrl_z_and_no_real_answer_is_unconfirmed_never_resent(
        noise: str) -> None:
    """The noise comes and the real answer never does: the part is handed (mr None),
    SubmitUnconfirmed, not transient; one copy on the air; the next text goes."""
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, send_timeout=1.0)
        await d.initialise()
        sim.noise_after_pdu(NOISE[noise], count=4)
        sim.stall_after_pdu(None, count=4)
        got = await _send_as_the_outbox_would(d, "+447700900123", "once only")
        assert len(sim.accepted) == 1, f"{len(sim.accepted)} copies on the air"
        assert isinstance(got, SendFailed), got
        assert isinstance(got.cause, SubmitUnconfirmed) and not got.transient
        assert [p.mr for p in got.sent] == [None]
        sim.engine.submit_noise.clear()
        sim.engine.submit_stalls.clear()
        parts = await d.send("+447700900124", "next", status_report=False)
        assert [p.mr for p in parts] == [1] and len(sim.accepted) == 2
        await d.close()


@pytest.mark.parametrize(("answer", "outcome"), [
    (b"\r\n+CMS ERROR: 42\r\n", "retry"),          # congestion: the network refused it
    (b"\r\n+CMS ERROR: 331\r\n", "retry"),         # no network service: nothing went out
    (b"\r\n+CMS ERROR: 310\r\n", "sim"),           # no SIM: no network access at all
    (b"\r\n+CMS ERROR: 304\r\n", "rejected"),      # the modem refused the PDU
    (b"\r\n+CMS ERROR: 1\r\n", "rejected"),        # unassigned number
    (b"\r\n+CMS ERROR: 332\r\n", "unconfirmed"),   # network timeout: may have gone
    (b"\r\n+CMS ERROR: 38\r\n", "unconfirmed"),    # also what a timeout at the MSC maps to
    (b"\r\n+CMS ERROR: 500\r\n", "unconfirmed"),   # unknown error
    (b"\r\n+CMS ERROR: 513\r\n", "unconfirmed"),   # manufacturer specific
    (b"\r\n+CME ERROR: 100\r\n", "unconfirmed"),   # not a +CMS ERROR at all
    (b"\r\nCOMMAND NOT SUPPORT\r\n", "unconfirmed"),
], ids=lambda v: v.decode().strip() if isinstance(v, bytes) else v)
async def test_error_after_ctrl_z_follows_the_documented_table(answer: bytes,
                                                               outcome: str) -> None:
    """What ends AT+CMGS after its Ctrl-Z decides whether the text may go again: only the
    +CMS ERROR codes errors.SUBMIT_CMS documents as "nothing went" are retried (or handed
    to the next sender); everything else is unconfirmed and never resent."""
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, send_timeout=1.0)
        await d.initialise()
        sim.noise_after_pdu(answer)
        sim.stall_after_pdu(None)  # the error is the modem's only answer to the PDU
        with pytest.raises(SendFailed) as exc:
            await d.send("+447700900123", "x", status_report=False)
        got = exc.value
        if outcome == "unconfirmed":
            assert isinstance(got.cause, SubmitUnconfirmed) and not got.transient
            assert [p.mr for p in got.sent] == [None]
        else:
            assert got.sent == [] and not isinstance(got.cause, SubmitUnconfirmed)
            assert got.transient is (outcome in ("retry", "sim"))
            assert isinstance(got.cause, SimUnavailable) is (outcome == "sim")
        await d.close()


async def test_port_lost_after_ctrl_z_is_unconfirmed() -> None:
    """The PDU went and the port vanished before any answer: handed, mr None, never
    resent (not transient)."""
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, send_timeout=5.0)
        await d.initialise()
        sim.stall_after_pdu(None)
        task = asyncio.create_task(d.send("+447700900123", "x", status_report=False))
        await _wait(lambda: len(sim.accepted) == 1)
        sim.disappear()
        with pytest.raises(SendFailed) as exc:
            await task
        assert isinstance(exc.value.cause, SubmitUnconfirmed) and not exc.value.transient
        assert isinstance(exc.value.cause.cause, ModemLost)
        assert [p.mr for p in exc.value.sent] == [None] and len(sim.accepted) == 1
        await d.close()


async def test_a_documented_error_on_a_later_part_keeps_the_parts_that_went() -> None:
    """Part 1 went (+CMGS: 0), part 2 got +CMS ERROR: 42 after its Ctrl-Z (documented: it
    did not go): SendFailed carries part 1, so the text is not sent again (the sender
    records it sent-unconfirmed)."""
    async with ModemSimulator("generic") as sim:
        d = await _open(sim, send_timeout=1.0)
        await d.initialise()
        sim.noise_after_pdu(b"")
        sim.noise_after_pdu(b"\r\n+CMS ERROR: 42\r\n")
        sim.stall_after_pdu(0.0)
        sim.stall_after_pdu(None)
        with pytest.raises(SendFailed) as exc:
            await d.send("+447700900123", "y" * 300, status_report=False)
        assert [p.mr for p in exc.value.sent] == [0] and len(sim.accepted) == 2
        assert "+CMS ERROR: 42" in str(exc.value.cause)
        await d.close()
