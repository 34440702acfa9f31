"""The asyncio modem driver: one serial port, the AT session, send / receive / reports.

Thin glue around the sans-IO ``AtSession``: a reader task feeds bytes in and resolves the
running command; commands are serialised by a lock and each has its own time limit
(the answer to a PDU: ``send_timeout``, 120 s by default, networks are slow). User text
only ever leaves as PDU hex (``encode_submit``), never in text mode, so CR/LF/Ctrl-Z/ESC
in a text or number cannot become an AT command.

Receiving never loses a text. With a ``pdu_journal`` (the daemon's: textback.inbound.journal)
every received SMS-DELIVER is handed to it raw (hex, storage, slot) before anything decodes
it, and its SIM slot is deleted only once the journal has committed it; decoding, reassembly
and handling then run from the journal. While the journal cannot commit (the store is full
or locked) the PDU stays on the SIM and in memory and is offered again every
``HELD_RETRY_S``: no restart needed. Without a journal (the CLI, tests of this driver) a
stored message (+CMTI) is read, handed to every message handler, and deleted from the SIM
only when all handlers returned without raising; parts of a concatenated text stay on the
SIM until the whole (or, after the reassembly timeout, what arrived) has been handed over.
Messages already on the SIM are read at start.

Two faults change what a failed send means. A SIM error (+CMS ERROR: 310 "SIM not
inserted", a PIN wanted...) raises ``SimUnavailable``: the text is fine, the SIM is not, so
it waits; the health check then asks AT+CPIN? until the SIM answers again and the supervisor
initialises the modem anew. No answer to the PDU once its Ctrl-Z went (``send_timeout``, or
the port gone) raises ``SubmitUnconfirmed`` with the part in ``SendFailed.sent`` (mr None):
the network may have the text, so it is recorded unconfirmed and never resent; before the
next command the driver makes sure the modem answers again and that a late +CMGS answer
cannot pass for the answer to a later command (``_resync``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from textback import logfmt
from textback.modem.at_session import (
    AtSession,
    CommandFailed,
    CommandOk,
    Event,
    Garbled,
    Prompt,
    SessionError,
    Unsolicited,
)
from textback.modem.errors import (
    RETRY,
    UNCONFIRMED,
    AtError,
    CommandError,
    CommandTimeout,
    ModemError,
    ModemLost,
    SimUnavailable,
    SubmitUnconfirmed,
    after_submit,
    is_sim_absent,
    is_sim_problem,
    port_error,
)
from textback.modem.pdu import DecodedPdu, PduError, decode_pdu, encode_submit, peek_direction
from textback.modem.reassembly import InboundMessage, Reassembler
from textback.modem.status import (
    REGISTRATION,
    ModemInfo,
    iccid_commands,
    parse_cmgr,
    parse_cmgs,
    parse_cops,
    parse_cpms,
    parse_cpms_storages,
    parse_csca,
    parse_csq,
    parse_iccid,
    parse_imei,
    parse_listing,
    parse_reg,
    parse_storage_urc,
)

log = logging.getLogger("textback.modem")

MessageHandler = Callable[[InboundMessage], Awaitable[None]]
ReportHandler = Callable[["DeliveryReport"], Awaitable[None]]
# (storage, slot, pdu hex) -> returns once the PDU is durably kept; raises when it is not
PduJournal = Callable[[str | None, int | None, str], Awaitable[object]]

# how often PDUs the journal could not take (store away) are offered to it again
HELD_RETRY_S = 0.25

# AT+CNMI choices, best first: store + +CMTI, and +CDSI (stored report) or +CDS (direct).
# SIM800L refuses ds=2, some modems refuse mode 2 or bfr: fall back step by step.
CNMI_CHOICES = (("2,1,0,2,0", "+CDSI"), ("2,1,0,1,0", "+CDS"), ("1,1,0,2,0", "+CDSI"),
                ("1,1,0,1,0", "+CDS"), ("2,1,0,0,0", None), ("1,1,0,0,0", None))
_PIN = re.compile(r"^[0-9]{4,8}$")


# after ESC aborts a prompt, how long its late OK/ERROR is given to arrive and be dropped
ABORT_SETTLE_S = 1.0
# after the ESC that opens initialise(): wait for this much silence (at most the max)
INIT_QUIET_S = 0.3
INIT_QUIET_MAX_S = 3.0
# after a PDU went unanswered: how long to keep probing for a modem that answers again
RESYNC_S = 30.0
# AT+CPIN? answers that mean "no usable SIM in the slot" (SIM800 manual V1.09: NOT INSERTED,
# NOT READY); any other answer means a SIM is there (READY, SIM PIN, SIM PUK...)
_SIM_GONE_STATES = ("NOT INSERTED", "NOT READY")
# +CREG/+CEREG <stat> that can carry an SMS (27.007 §7.2: home, roaming, SMS only home /
# roaming, "CSFB not preferred" home / roaming)
_REGISTERED = (1, 5, 6, 7, 9, 10)


@dataclass(frozen=True)
class PartResult:
    """One sent part: its TP-MR from +CMGS (None: handed, no answer), the destination,
    when it went."""

    mr: int | None
    part: int
    parts: int
    number: str
    tpdu_length: int
    sent_at: float


@dataclass(frozen=True)
class DeliveryReport:
    """A status report, matched to the sent part it is about when we still know it."""

    mr: int | None
    number: str | None
    status: int | None
    category: str | None  # delivered | pending | failed
    meaning: str | None
    discharge_time: str | None
    part: PartResult | None


class SendFailed(ModemError):
    """A part could not be sent; ``sent`` holds the parts that did go (with their mr)."""

    def __init__(self, cause: ModemError, sent: list[PartResult]) -> None:
        super().__init__(f"part {len(sent) + 1} not sent: {cause}")
        self.cause = cause
        self.sent = sent
        self.transient = cause.transient


def _code(error: AtError) -> str:
    """"+CMS ERROR: 310" - the code as the modem wrote it, for log lines."""
    return f"+{error.kind} ERROR: {error.code}" if error.code is not None else error.kind


def _digits_match(a: str | None, b: str | None) -> bool:
    """Report numbers come back national or international: compare the last 8 digits."""
    if not a or not b:
        return True
    da, db = re.sub(r"\D", "", a), re.sub(r"\D", "", b)
    return da[-8:] == db[-8:]


class ModemDriver:
    """One open serial port and the AT session on it: send a text, read what arrives.

    The driver is the only thing that writes to the port, so a command and its answer are
    never interleaved with another's; it owns the sans-IO ``AtSession`` and a reader task, and
    turns the modem's answers into results and typed errors (``textback.modem.errors``). It
    does not retry and does not reopen the port: the supervisor decides that, because only it
    knows whether the device is still at its stable path.
    """

    def __init__(
        self,
        port: str,
        *,
        pin: str | None = None,
        baudrate: int = 115200,
        smsc: str | None = None,
        command_timeout: float = 10.0,
        send_timeout: float = 120.0,
        sim_ready_timeout: float = 30.0,
        reassembly_timeout: float = 600.0,
    ) -> None:
        self.port = port
        self._pin = pin
        self.baudrate = baudrate
        self.smsc = smsc
        self.command_timeout = command_timeout
        self.send_timeout = send_timeout
        self.sim_ready_timeout = sim_ready_timeout
        self.session = AtSession()
        self.reassembler = Reassembler(reassembly_timeout)
        self.info = ModemInfo(port=port)
        self.message_handlers: list[MessageHandler] = []
        self.report_handlers: list[ReportHandler] = []
        self.pdu_journal: PduJournal | None = None
        # DELIVER PDUs the journal could not take yet: (pdu, location), kept on the SIM too
        # (a +CMT one only here); the supervisor shares one list across reopens
        self.held: list[tuple[str, tuple[str, int] | None]] = []
        self.lost = asyncio.Event()
        # something about the SIM changed (a +CPIN URC, a send refused for the SIM): the
        # supervisor runs a health check now instead of at its next interval
        self.attention = asyncio.Event()
        self.sim_absent = False  # the last look found no SIM: poll for it to come back
        self.sim_returned = False  # it was absent and answers again: initialise anew
        # initialise() got past the SIM to PDU mode and CNMI; False while a SIM problem
        # stopped it early (the health check then looks for the SIM to become READY)
        self.setup_done = False
        self._pdu_written = False
        self._late_mr: int | None = None  # a "+CMGS: <mr>" seen after its AT+CMGS ended
        self.report_mode: str | None = None
        self.needs_cnma = False
        self.last_rx = 0.0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[Event] | None = None
        self._work: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._sent: OrderedDict[int, list[PartResult]] = OrderedDict()
        self._mem1: str | None = None
        self._storage = "SM"

    # ---------------------------------------------------------------- open / close

    async def open(self) -> None:
        import serial
        import serial_asyncio_fast

        try:
            self._reader, self._writer = await serial_asyncio_fast.open_serial_connection(
                url=self.port, baudrate=self.baudrate, exclusive=True,
            )
        except (OSError, serial.SerialException, ValueError) as exc:
            raise port_error(self.port, exc) from exc
        self.lost.clear()
        self._tasks = [asyncio.create_task(self._read_loop(), name=f"modem-read {self.port}"),
                       asyncio.create_task(self._work_loop(), name=f"modem-work {self.port}")]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
                # the port (and its exclusive lock) is released only when the transport is
                # closed: a reopen right after must not find it busy
                await asyncio.wait_for(self._writer.wait_closed(), 2.0)
            self._writer = None
        self._fail_waiter(ModemLost(f"{self.port}: closed"))
        self.lost.set()

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self.lost.is_set()

    # ---------------------------------------------------------------- I/O glue

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(4096)
                if not data:
                    break
                self.last_rx = time.monotonic()
                self.session.receive_data(data)
                for event in self.session.events():
                    self._dispatch(event)
        except (OSError, Exception) as exc:  # pyserial raises SerialException on unplug
            logfmt.log(log, logging.WARNING, "modem_read_failed", port=self.port,
                       error=type(exc).__name__)
        finally:
            self.lost.set()
            self._fail_waiter(ModemLost(f"{self.port}: the port went away"))

    def _fail_waiter(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, CommandOk | CommandFailed | Prompt):
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(event)
        elif isinstance(event, Unsolicited):
            if not event.name and event.args.startswith("+CMGS:"):
                # a "+CMGS: <mr>" with no command running: the late answer to the PDU whose
                # AT+CMGS was ended by noise or a timeout (only one PDU is ever in flight)
                late = parse_cmgs((event.args,))
                if late is not None and self._pdu_written and self._late_mr is None:
                    self._late_mr = late
                return
            self._on_urc(event)
        elif isinstance(event, Garbled):
            logfmt.log(log, logging.DEBUG, "modem_garbled", port=self.port, dropped=len(event.data))

    def _write(self, data: bytes) -> None:
        if self._writer is None or self.lost.is_set():
            raise ModemLost(f"{self.port}: not open")
        self._writer.write(data)

    async def _await(self, what: str, timeout: float) -> Event:
        assert self._waiter is not None
        try:
            async with asyncio.timeout(timeout):
                return await self._waiter
        except TimeoutError:
            self.session.cancel()
            raise CommandTimeout(what, timeout) from None

    # ---------------------------------------------------------------- commands

    async def command(self, command: str, timeout: float | None = None) -> tuple[str, ...]:
        """Run one AT command; its information lines, or CommandError / CommandTimeout."""
        async with self._lock:
            return await self._command(command, timeout)

    async def _command(self, command: str, timeout: float | None = None) -> tuple[str, ...]:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._write(self.session.command(command))
        event = await self._await(command, timeout or self.command_timeout)
        if isinstance(event, CommandFailed):
            raise CommandError(command, event.error)
        if isinstance(event, Prompt):  # a prompt we did not ask for: leave it
            self._waiter = loop.create_future()
            self._write(self.session.abort())
            await self._await(command, self.command_timeout)
            raise CommandError(command, AtError("ERROR", None, "unexpected prompt"))
        assert isinstance(event, CommandOk)
        return event.lines

    async def _try(self, command: str, timeout: float | None = None) -> tuple[str, ...] | None:
        try:
            return await self._command(command, timeout)
        except CommandError:
            return None

    # ---------------------------------------------------------------- init and health

    async def initialise(self) -> ModemInfo:
        """Bring the modem to a known state; returns the health snapshot.

        Raises ModemError only when the modem cannot work at all (no answer, PDU mode
        refused); a SIM or network problem is reported in ``info.problems`` instead.
        """
        async with self._lock:
            self.setup_done = False
            self._write(b"\x1b")  # leave a prompt a previous run may have left open
            # the modem's answer to that ESC, or to a command of a run killed mid-way, must
            # land while no command is pending (counted stray), not be taken for the answer
            # to ours: every answer after it would be one behind (a SIM "not ready" that is)
            await self._quiet(INIT_QUIET_S, INIT_QUIET_MAX_S)
            for attempt in range(3):
                try:
                    await self._command("AT", min(self.command_timeout, 2.0))
                    break
                except CommandTimeout:
                    if attempt == 2:
                        raise
                except CommandError:
                    pass
            await self._try("ATE0")
            await self._try("AT+CMEE=1")
            info = ModemInfo(port=self.port)
            self.info = info
            if not await self._unlock_sim(info):
                await self._identity(info)
                return info
            await self._wait_sms_ready()
            await self._command("AT+CMGF=0")
            await self._storage_setup(info)
            await self._cnmi(info)
            csms = await self._try("AT+CSMS?")
            self.needs_cnma = bool(csms and any(x.startswith("+CSMS: 1") for x in csms))
            self.setup_done = True
            await self._identity(info)
            await self._health(info)
            pending = await self._try("AT+CMGL=4", 30.0)
        for index, pdu in parse_listing(pending or ()):
            await self._work.put(("pdu", (pdu, (self._storage, index))))
        return info

    async def _quiet(self, quiet_s: float, limit_s: float) -> None:
        """Until nothing was received for ``quiet_s`` since now (at most ``limit_s``): late
        answers meant for someone else arrive meanwhile, with no command pending."""
        start = time.monotonic()
        deadline = start + limit_s
        while (now := time.monotonic()) < deadline:
            silent_for = now - max(self.last_rx, start)
            if silent_for >= quiet_s:
                return
            await asyncio.sleep(min(quiet_s - silent_for, deadline - now))

    async def _cpin_state(self) -> str:
        """AT+CPIN?'s state ("READY", "SIM PIN", ...). An OK without its ``+CPIN:`` line
        is an answer meant for an earlier command (the modem is one answer behind): wait
        for quiet and ask again, so a desync is never reported as a SIM problem."""
        for _ in range(3):
            lines = await self._command("AT+CPIN?")
            state = next((x.split(":", 1)[1].strip() for x in lines
                          if x.startswith("+CPIN:")), "")
            if state:
                return state
            await self._quiet(INIT_QUIET_S, INIT_QUIET_MAX_S)
        return ""

    async def _unlock_sim(self, info: ModemInfo) -> bool:
        self.sim_returned = False
        try:
            state = await self._cpin_state()
        except CommandError as exc:
            self.sim_absent = is_sim_absent(exc.error)
            info.sim = exc.error.reason
            info.problems.append(f"SIM: {exc.error.reason}")
            return False
        self.sim_absent = state in _SIM_GONE_STATES
        if state == "READY":
            info.sim = "READY"
            return True
        if state == "SIM PIN" and self._pin:
            if not _PIN.fullmatch(self._pin):
                info.sim = state
                info.problems.append("SIM PIN required; the configured pin is not 4-8 digits")
                return False
            try:
                await self._command(f'AT+CPIN="{self._pin}"', 30.0)
            except CommandError as exc:
                info.sim = state
                info.problems.append(f"SIM PIN refused: {exc.error.reason}")
                return False
            info.sim = "READY"
            return True
        info.sim = state or None
        if state == "SIM PIN":
            info.problems.append("SIM PIN required: set [modem] pin in the config")
        else:
            info.problems.append(f"SIM not ready: {state or 'no answer to AT+CPIN?'}")
        return False

    async def _wait_sms_ready(self) -> None:
        """After PIN entry the SIM is busy for a while (+CME ERROR: 14, Qualcomm/ZTE
        capture): poll AT+CPMS? until the SMS store answers."""
        deadline = time.monotonic() + self.sim_ready_timeout
        while True:
            try:
                await self._command("AT+CPMS?")
                return
            except CommandError as exc:
                if time.monotonic() > deadline or not exc.error.transient:
                    return
            await asyncio.sleep(0.5)

    async def _storage_setup(self, info: ModemInfo) -> None:
        test = await self._try("AT+CPMS=?")
        storages = parse_cpms_storages(test[0]) if test else []
        self._storage = "SM" if ("SM" in storages or not storages) else storages[0]
        s = self._storage
        lines = await self._try(f'AT+CPMS="{s}","{s}","{s}"')
        if lines is None:
            lines = await self._try(f'AT+CPMS="{s}","{s}"')
        self._mem1 = s if lines is not None else None
        summary = parse_cpms(lines[0]) if lines else None
        info.storage = f"{s} {summary}" if summary and not summary[0].isalpha() else summary

    async def _cnmi(self, info: ModemInfo) -> None:
        for args, mode in CNMI_CHOICES:
            if await self._try(f"AT+CNMI={args}") is not None:
                self.report_mode = mode
                info.report_mode = mode
                if mode is None:
                    info.problems.append("modem gives no delivery report indications")
                return
        info.problems.append("AT+CNMI refused: new messages are found only by polling")

    async def _identity(self, info: ModemInfo) -> None:
        for cmd, attr in (("AT+CGMI", "manufacturer"), ("AT+CGMM", "model"),
                          ("AT+CGMR", "firmware")):
            lines = await self._try(cmd)
            if lines:
                value = " ".join(x.strip() for x in lines if x.strip())
                value = re.sub(r"^\+CGM[IMR]:\s*", "", value)
                setattr(info, attr, value[:80] or None)

    async def read_ids(self, info: ModemInfo) -> None:
        """The IMEI (AT+CGSN) and the SIM's ICCID (the dialect's command, see
        ``iccid_commands``) into ``info``; for ``textback modem probe``, after
        ``initialise`` (which read the manufacturer the dialect is chosen by). A modem that
        refuses one leaves it None."""
        async with self._lock:
            info.imei = parse_imei(await self._try("AT+CGSN") or ())
            for command in iccid_commands(info.manufacturer, info.model):
                info.iccid = parse_iccid(await self._try(command) or ())
                if info.iccid is not None:
                    break

    async def _sim_check(self, info: ModemInfo) -> bool:
        """AT+CPIN? (one short command): is a SIM there? Notes a SIM that went away (a
        problem first in the list, so the log line says it) and one that came back
        (``sim_returned``: the supervisor initialises again, PIN included). False = no SIM."""
        try:
            state = await self._cpin_state()
        except CommandError as exc:
            if not is_sim_absent(exc.error):
                return not self.sim_absent  # SIM busy, or no AT+CPIN?: nothing learnt
            self._sim_gone(info, f"{exc.error.reason} ({_code(exc.error)} to AT+CPIN?)")
            return False
        if state in _SIM_GONE_STATES:
            self._sim_gone(info, f"SIM not inserted (AT+CPIN? says {state})")
            return False
        if state and self.sim_absent:
            self.sim_absent = False
            self.sim_returned = True
            logfmt.log(log, logging.INFO, "modem_sim_back", port=self.port, sim=state)
        elif state == "READY" and not self.setup_done:
            # set-up stopped at the SIM (not ready yet, busy, no answer): it is ready now.
            # Only READY: a SIM still asking for its PIN is not retried here, or a wrong
            # configured PIN would be tried every health check until the SIM locks (PUK).
            self.sim_returned = True
            logfmt.log(log, logging.INFO, "modem_sim_ready_reinit", port=self.port)
        return True

    def _sim_gone(self, info: ModemInfo, problem: str) -> None:
        self.sim_absent = True
        info.sim = "not inserted"
        info.registered = False
        info.problems = [problem] + [p for p in info.problems if not p.startswith("SIM")]

    async def _health(self, info: ModemInfo) -> None:
        info.problems = [p for p in info.problems if p.startswith(("SIM", "AT+CNMI", "modem"))]
        if (info.sim is not None or not self.setup_done) and not await self._sim_check(info):
            # no SIM: registration, operator and SMSC cannot be read; the signal still can
            csq = await self._try("AT+CSQ")
            if csq:
                info.signal_csq, info.signal_dbm = parse_csq(csq[0])
            return
        csq = await self._try("AT+CSQ")
        if csq:
            info.signal_csq, info.signal_dbm = parse_csq(csq[0])
        stat: int | None = None
        for cmd in ("AT+CREG?", "AT+CEREG?"):
            lines = await self._try(cmd)
            if lines:
                value = parse_reg(lines[0])
                if value is not None and (stat is None or value in (1, 5, 6, 7)):
                    stat = value
        info.registration = REGISTRATION.get(stat, None) if stat is not None else None
        info.registered = stat in (1, 5, 6, 7)
        cops = await self._try("AT+COPS?")
        info.operator = parse_cops(cops[0]) if cops else None
        csca = await self._try("AT+CSCA?")
        info.smsc = parse_csca(csca[0]) if csca else None
        if not info.registered:
            info.problems.append(f"not registered on the network ({info.registration or '?'})")
        if info.signal_dbm is None:
            info.problems.append("no signal reading (AT+CSQ 99: antenna? coverage?)")
        if not info.smsc and not self.smsc:
            info.problems.append("no SMSC on the SIM: set [modem] smsc in the config")

    async def health(self) -> ModemInfo:
        """Refresh signal, registration, operator and SMSC (a cheap liveness check too)."""
        async with self._lock:
            await self._health(self.info)
        return self.info

    async def reset(self) -> None:
        """AT+CFUN=1,1 (full restart) where the modem has it; the port usually drops after."""
        async with self._lock:
            self._write(b"\x1b")
            await self._try("AT+CFUN=1,1", 15.0)

    # ---------------------------------------------------------------- send

    async def send(
        self,
        number: str,
        text: str,
        *,
        status_report: bool = True,
        validity_minutes: int | None = None,
        on_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> list[PartResult]:
        """Send ``text`` in the fewest parts; one PartResult (with TP-MR) per part.

        PduError (permanent: the number is not an address) before anything is written;
        SendFailed (with the parts that did go) when a part fails. ``on_commit`` is awaited
        at the point of no return — the modem showed its prompt for the first part and the
        PDU with its Ctrl-Z is about to be written — so the caller can record that from now
        on a crash may leave a text that went out. If it raises, the prompt is aborted with
        ESC and nothing was sent.
        """
        parts = encode_submit(number, text, smsc=self.smsc, status_report=status_report,
                              validity_minutes=validity_minutes)
        sent: list[PartResult] = []
        async with self._lock:
            try:
                await self._check_registered()
            except ModemError as exc:
                raise SendFailed(exc, sent) from exc
            for p in parts:
                self._pdu_written = False
                try:
                    mr = await self._submit(p.pdu, p.tpdu_length,
                                            on_commit if not sent else None)
                except (CommandTimeout, ModemLost, CommandError) as exc:
                    if not self._pdu_written:
                        if isinstance(exc, CommandError) and is_sim_problem(exc.error):
                            self._sim_refused(exc)
                            raise SendFailed(SimUnavailable(exc), sent) from exc
                        raise SendFailed(exc, sent) from exc
                    try:
                        late = await self._after_ctrl_z(exc)
                    except ModemError as proven:  # documented: this part did not go
                        raise SendFailed(proven, sent) from exc
                    if late is None:
                        # the Ctrl-Z went and nothing proves the part did not: the network
                        # may have it. Never resend it.
                        sent.append(PartResult(None, p.part, p.parts, number, p.tpdu_length,
                                               time.time()))
                        logfmt.log(log, logging.WARNING, "modem_send_unconfirmed",
                                   port=self.port, error=type(exc).__name__)
                        raise SendFailed(SubmitUnconfirmed(exc), sent) from exc
                    mr = late
                except ModemError as exc:
                    raise SendFailed(exc, sent) from exc
                result = PartResult(mr, p.part, p.parts, number, p.tpdu_length, time.time())
                sent.append(result)
                self._sent.setdefault(mr, []).append(result)
                self._sent.move_to_end(mr)
                while len(self._sent) > 1024:
                    self._sent.popitem(last=False)
        return sent

    async def _check_registered(self) -> None:
        """Before a text: is the modem registered (AT+CREG? / AT+CEREG?)? An unregistered
        modem answers the PDU after its Ctrl-Z with an error that proves nothing (+CMS ERROR:
        500 on the E3531, gammu #438), which would leave the text unconfirmed and unsent;
        asked first, nothing is handed and the text is retried. A modem that answers
        neither question is let through (the answer to the PDU then decides)."""
        answered = False
        for cmd in ("AT+CREG?", "AT+CEREG?"):
            lines = await self._try(cmd)
            stat = parse_reg(lines[0]) if lines else None
            if stat in _REGISTERED:
                return
            answered = answered or stat is not None
        if not answered:
            return
        self.info.registered = False
        # the usual reason: the SIM (pulled, locked). Say so, as a refused send would.
        try:
            state = await self._cpin_state()
        except CommandError as exc:
            if is_sim_problem(exc.error):
                self._sim_refused(exc)
                raise SimUnavailable(exc) from exc
            state = ""
        if state in _SIM_GONE_STATES:
            cause = CommandError("AT+CPIN?", AtError("CME", 10, state))
            self._sim_refused(cause)
            raise SimUnavailable(cause)
        raise ModemError(f"{self.port}: not registered on the network (AT+CREG?/"
                         "AT+CEREG?): nothing handed to the modem, retry later")

    async def _after_ctrl_z(self, exc: ModemError) -> int | None:
        """A part's PDU and Ctrl-Z went and ``exc`` ended AT+CMGS. Returns the TP-MR of a
        late "+CMGS: <mr>" that arrived while getting back in step (the part went, and is
        recorded with it); None: the part may have gone, record it unconfirmed. Raises
        (``exc`` itself, or SimUnavailable) only where errors.SUBMIT_CMS documents that
        nothing went (issue 12)."""
        outcome = after_submit(exc.error) if isinstance(exc, CommandError) else UNCONFIRMED
        if isinstance(exc, CommandError) and outcome != UNCONFIRMED:
            logfmt.log(log, logging.WARNING, "modem_submit_refused", port=self.port,
                       error=_code(exc.error), outcome=outcome, sent="none")
            exc.transient = outcome == RETRY
            if outcome == RETRY and is_sim_problem(exc.error):
                self._sim_refused(exc)
                raise SimUnavailable(exc) from exc
            raise exc
        if isinstance(exc, CommandError):
            logfmt.log(log, logging.WARNING, "modem_send_unconfirmed", port=self.port,
                       error=_code(exc.error), why="the answer proves nothing: it may have gone")
        else:
            logfmt.log(log, logging.WARNING, "modem_send_unconfirmed", port=self.port,
                       error=type(exc).__name__, why="no answer to a sent PDU")
        if not isinstance(exc, ModemLost):
            # a timeout, or an answer that proves nothing: get back in step, and watch for
            # the real "+CMGS: <mr>" on the way
            with contextlib.suppress(ModemError):
                await self._resync()
        if self._late_mr is not None:
            logfmt.log(log, logging.INFO, "modem_late_cmgs", port=self.port, mr=self._late_mr,
                       why="the late +CMGS answered the PDU: sent")
        return self._late_mr

    def _sim_refused(self, exc: CommandError) -> None:
        """A send refused for the SIM (by AT+CMGS, or AT+CPIN? asked because the modem
        was not registered): say so in the health snapshot at once (the
        supervisor then stops offering this modem) and have the SIM looked at now."""
        reason = exc.error.reason
        problem = (reason if reason.startswith("SIM") else f"SIM: {reason}")
        problem += f" ({_code(exc.error)} to {exc.command.split('=', 1)[0]})"
        if is_sim_absent(exc.error):
            self.sim_absent = True
            self.info.sim = "not inserted"
        self.info.registered = self.info.registered and not self.sim_absent
        self.info.problems = [problem] + [p for p in self.info.problems
                                          if not p.startswith("SIM")]
        self.attention.set()

    async def _resync(self) -> None:
        """After a PDU went unanswered: probe with AT+CMGF? until the modem answers it. Its
        answer is recognisable (+CMGF:), so a late "+CMGS: <mr> / OK" that lands on the
        probe is seen for what it is; then wait for the rest to drain and probe again.
        Raises CommandTimeout if the modem stays mute (the health check resets it)."""
        deadline = time.monotonic() + RESYNC_S
        while True:
            try:
                lines = await self._command("AT+CMGF?", min(self.command_timeout, 2.0))
                late = parse_cmgs(lines)
                if late is not None and self._late_mr is None:
                    self._late_mr = late  # the PDU's own answer, landed on the probe
                if any(x.startswith("+CMGF:") for x in lines):
                    return
                logfmt.log(log, logging.INFO, "modem_late_answer_dropped", port=self.port)
            except CommandTimeout:
                if time.monotonic() >= deadline:
                    raise
            except CommandError:
                pass  # a late +CMS ERROR for the PDU, or the modem still busy
            await asyncio.sleep(ABORT_SETTLE_S)

    async def _submit(self, pdu: str, length: int,
                      on_commit: Callable[[], Awaitable[None]] | None = None) -> int:
        loop = asyncio.get_running_loop()
        command = f"AT+CMGS={length}"
        self._waiter = loop.create_future()
        self._write(self.session.command(command))
        try:
            event = await self._await(command, self.command_timeout)
        except CommandTimeout:
            # the prompt may still come (or has come unseen): leave PDU input with ESC, or
            # the modem swallows every later command as PDU text. Its answer to the ESC
            # must land while no command is pending (counted stray), not be taken for the
            # answer to the next one: give it a moment before the lock is released.
            with contextlib.suppress(ModemError):
                self._write(self.session.abort())
            await asyncio.sleep(ABORT_SETTLE_S)
            raise
        if isinstance(event, CommandFailed):
            raise CommandError(command, event.error)
        if not isinstance(event, Prompt):
            raise CommandError(command, AtError("ERROR", None, "no prompt for the PDU"))
        if on_commit is not None:
            try:
                await on_commit()
            except BaseException:
                # leave the prompt with ESC and let the modem close the command (it answers
                # OK or ERROR) so the session is free for the next one
                self._waiter = loop.create_future()
                with contextlib.suppress(ModemError):
                    self._write(self.session.abort())
                    await self._await(command, self.command_timeout)
                raise
        self._waiter = loop.create_future()
        try:
            pdu_bytes = self.session.submit_pdu(pdu)
        except SessionError as exc:  # out of step with the modem: retry later, never crash
            raise ModemError(f"{command}: {exc}") from exc
        self._late_mr = None
        self._write(pdu_bytes)
        self._pdu_written = True
        try:
            event = await self._await(command, self.send_timeout)
        except CommandTimeout:
            with contextlib.suppress(ModemError):
                self._write(self.session.abort())
            raise
        if isinstance(event, CommandFailed):
            raise CommandError(command, event.error)
        assert isinstance(event, CommandOk)  # the session ends it only with +CMGS: <mr>
        mr = parse_cmgs(event.lines)
        if mr is None:  # "+CMGS:" with no number: it went, its reference is unreadable
            raise CommandError(command, AtError("ERROR", None, "+CMGS without a reference"))
        return mr

    # ---------------------------------------------------------------- receive

    def _on_urc(self, urc: Unsolicited) -> None:
        name = urc.name
        if name in ("+CMTI", "+CDSI"):
            loc = parse_storage_urc(urc.args)
            if loc is not None:
                self._work.put_nowait(("read" if name == "+CMTI" else "report", loc))
        elif name in ("+CMT", "+CDS") and urc.pdu:
            self._work.put_nowait(("pdu", (urc.pdu, None)))
            if self.needs_cnma:
                self._work.put_nowait(("cnma", None))
        elif name in ("+CPIN", "+QSIMSTAT", "^SIMST"):
            # SIM pulled or pushed back (SIM800 manual V1.09: +CPIN: NOT READY / NOT
            # INSERTED / READY / SIM PIN): look at it now, not at the next health check
            logfmt.log(log, logging.INFO, "modem_sim_changed", port=self.port, urc=urc.line[:40])
            self.attention.set()
        elif name:
            logfmt.log(log, logging.DEBUG, "modem_urc", port=self.port, urc=name)

    async def _work_loop(self) -> None:
        """Reads, hand-overs and deletes happen here, one at a time, never in the reader."""
        while True:
            try:
                async with asyncio.timeout(HELD_RETRY_S if self.held else 1.0):
                    kind, arg = await self._work.get()
            except TimeoutError:
                try:
                    await self._retry_held()
                except ModemLost:
                    return
                for msg in self.reassembler.expire(time.monotonic()):
                    await self._deliver(msg)
                continue
            try:
                if kind == "read":
                    assert isinstance(arg, tuple)
                    await self._read_stored(arg[0], arg[1], report=False)
                elif kind == "report":
                    assert isinstance(arg, tuple)
                    await self._read_stored(arg[0], arg[1], report=True)
                elif kind == "pdu":
                    assert isinstance(arg, tuple)
                    await self._handle_pdu(arg[0], arg[1])
                elif kind == "cnma":
                    async with self._lock:
                        await self._try("AT+CNMA")
                if self.held:
                    await self._retry_held()
            except ModemLost:
                return
            except ModemError as exc:
                logfmt.log(log, logging.WARNING, "modem_error", port=self.port, error=exc)
            for msg in self.reassembler.expire(time.monotonic()):
                await self._deliver(msg)

    async def _read_stored(self, mem: str, index: int, *, report: bool) -> None:
        """AT+CMGR from ``mem``; an EC25 announces +CDSI "SM" but keeps the report in "SR"."""
        tried = [mem] + (["SR"] if report and mem != "SR" else [])
        async with self._lock:
            for where in tried:
                if self._mem1 != where and await self._try(f'AT+CPMS="{where}"') is None:
                    continue
                self._mem1 = where
                lines = await self._try(f"AT+CMGR={index}")
                pdu = parse_cmgr(lines) if lines else None
                if pdu is None:
                    continue
                if not report and self._journals(pdu):
                    break
                try:
                    decoded = decode_pdu(pdu)
                except PduError:
                    continue
                if report and decoded.direction != "status":
                    continue
                break
            else:
                return
        if not report and self._journals(pdu):
            await self._journal(pdu, (where, index))
            return
        await self._handle_decoded(decoded, (where, index))

    def _journals(self, pdu: str) -> bool:
        """Whether this PDU goes to the journal raw: with a journal, anything that is not
        a status report or a stored SUBMIT by its TP-MTI (an unreadable one included)."""
        return self.pdu_journal is not None and peek_direction(pdu) not in ("status",
                                                                           "submit")

    async def _journal(self, pdu: str, location: tuple[str, int] | None) -> None:
        """Hand one DELIVER PDU to the journal; free its slot once it is committed. If the
        journal raises (store full or locked), keep it on the SIM and in memory."""
        assert self.pdu_journal is not None
        try:
            await self.pdu_journal(location[0] if location else None,
                                   location[1] if location else None, pdu)
        except Exception as exc:
            if all(held != (pdu, location) for held in self.held):
                self.held.append((pdu, location))
                logfmt.log(log, logging.WARNING, "modem_text_held", port=self.port,
                           error=f"{type(exc).__name__}: {exc}", retry_s=HELD_RETRY_S,
                           kept="on the SIM and in memory")
            return
        with contextlib.suppress(ValueError):
            self.held.remove((pdu, location))
        if location:
            await self._delete([location])

    async def _retry_held(self) -> None:
        """Offer the held PDUs to the journal again, oldest first; stop at the first that
        it still refuses (the store is still away)."""
        for pdu, location in list(self.held):
            await self._journal(pdu, location)
            if (pdu, location) in self.held:
                return

    async def _handle_pdu(self, pdu: str, location: tuple[str, int] | None) -> None:
        if self._journals(pdu):
            await self._journal(pdu, location)
            return
        try:
            decoded = decode_pdu(pdu)
        except PduError as exc:
            logfmt.log(log, logging.WARNING, "modem_pdu_undecodable", port=self.port, error=exc,
                       kept="on the modem")
            return
        await self._handle_decoded(decoded, location)

    async def _handle_decoded(self, d: DecodedPdu, location: tuple[str, int] | None) -> None:
        if d.direction == "status":
            await self._report(d)
            if location:
                await self._delete([location])
            return
        if d.direction != "deliver":
            return  # a stored SUBMIT copy: not ours to touch
        concat = (d.udh.concat_ref, d.udh.ref_bits, d.udh.part, d.udh.parts) if d.udh else None
        msg = self.reassembler.add(
            number=d.number, text=d.text or "", timestamp=d.timestamp, smsc=d.smsc,
            now=time.monotonic(), concat=concat, location=location,
        )
        if msg is not None:
            await self._deliver(msg)

    async def _deliver(self, msg: InboundMessage) -> None:
        if not self.message_handlers:
            return  # nobody can store it: leave it on the SIM
        for handler in self.message_handlers:
            try:
                await handler(msg)
            except Exception as exc:
                logfmt.log(log, logging.ERROR, "modem_handler_failed", port=self.port,
                           error=type(exc).__name__, kept="on the SIM")
                return
        await self._delete(list(msg.locations))

    async def _delete(self, locations: list[tuple[str, int]]) -> None:
        if not locations:
            return
        async with self._lock:
            for mem, index in locations:
                if self._mem1 != mem and await self._try(f'AT+CPMS="{mem}"') is None:
                    continue
                self._mem1 = mem
                await self._try(f"AT+CMGD={index}")

    async def _report(self, d: DecodedPdu) -> None:
        part = None
        if d.message_reference is not None:
            for candidate in reversed(self._sent.get(d.message_reference, [])):
                if _digits_match(candidate.number, d.number):
                    part = candidate
                    break
        report = DeliveryReport(d.message_reference, d.number, d.status, d.status_category,
                                d.status_meaning, d.discharge_time, part)
        for handler in self.report_handlers:
            try:
                await handler(report)
            except Exception as exc:
                logfmt.log(log, logging.ERROR, "modem_report_handler_failed", port=self.port,
                           error=type(exc).__name__)
