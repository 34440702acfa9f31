"""Keeps one modem usable: open by its stable path, initialise, watch, recover.

States: absent (no device at the path), initialising, ready, degraded (answers but cannot
send well: no network, SIM PIN needed, no SMSC), lost (was there, went away or stopped
answering). A USB replug re-creates /dev/ttyUSBn under a new number but the same
/dev/serial/by-id link, so the supervisor polls the link and reopens it (well within 30 s
with the default 1 s poll). A modem that stops answering gets AT+CFUN=1,1 where the dialect
has it, then a close and reopen. Several modems = several supervisors, independent.

A SIM pulled out (found by a +CPIN URC, a send refused with +CMS ERROR: 310, or AT+CPIN? in
the health check) makes the modem degraded and unavailable; while it is out, AT+CPIN? is
asked every ``sim_poll_interval`` (one short command), and when a SIM answers again the
modem is initialised anew on the open port (PIN, AT+CNMI, AT+CPMS as at first) and ready
again without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from textback import logfmt
from textback.modem.driver import (
    MessageHandler,
    ModemDriver,
    PartResult,
    PduJournal,
    ReportHandler,
    SendFailed,
)
from textback.modem.errors import (
    CommandTimeout,
    ModemError,
    ModemLost,
    PortError,
    SimUnavailable,
)
from textback.modem.status import ModemInfo

log = logging.getLogger("textback.modem")

ABSENT, INITIALISING, READY, DEGRADED, LOST = "absent", "initialising", "ready", "degraded", "lost"


@dataclass(frozen=True)
class Health:
    """A snapshot for status pages and `textback modem probe`."""

    name: str
    port: str
    state: str
    info: ModemInfo
    error: str | None
    since: float
    reopens: int
    resets: int


class ModemSupervisor:
    """Keeps one modem usable for as long as the daemon runs (see the module doc).

    It owns the driver's life cycle — open by the stable path, initialise, health-check,
    reset, reopen after a USB replug, re-initialise after a SIM comes back — and publishes
    one ``Health`` snapshot that the sender, ``textback status`` and the dispatcher read. A
    text offered while the modem is not ready is refused as transient, so the dispatcher waits
    or hands it to the next sender instead of losing it.
    """

    def __init__(
        self,
        port: str,
        *,
        name: str = "modem",
        pin: str | None = None,
        smsc: str | None = None,
        poll_interval: float = 1.0,
        health_interval: float = 30.0,
        sim_poll_interval: float = 5.0,
        command_timeout: float = 10.0,
        send_timeout: float = 120.0,
        failures_before_reset: int = 2,
        driver_factory: Callable[..., ModemDriver] = ModemDriver,
    ) -> None:
        self.port = port
        self.name = name
        self.poll_interval = poll_interval
        self.health_interval = health_interval
        self.sim_poll_interval = sim_poll_interval
        self.failures_before_reset = failures_before_reset
        self._make = lambda: driver_factory(port, pin=pin, smsc=smsc,
                                            command_timeout=command_timeout,
                                            send_timeout=send_timeout)
        self.driver: ModemDriver | None = None
        self.state = ABSENT
        self.error: str | None = None
        self.since = time.monotonic()
        self.reopens = 0
        self.resets = 0
        self.message_handlers: list[MessageHandler] = []
        self.report_handlers: list[ReportHandler] = []
        # set by the daemon: received texts go to its inbound journal (driver docstring)
        self.pdu_journal: PduJournal | None = None
        self.held_pdus: list[tuple[str, tuple[str, int] | None]] = []
        self.state_changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._info = ModemInfo(port=port)

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"modem-supervisor {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop()

    def available(self) -> bool:
        """Ready, or degraded for a reason that still lets a text through (weak signal, no
        delivery-report indications). A SIM problem (PIN refused, SIM not ready) is not:
        every send would fail, so texts wait for the SIM or for another sender."""
        if self.driver is None or self.state not in (READY, DEGRADED):
            return False
        return self.state == READY or not any(
            p.startswith("SIM") for p in self.driver.info.problems)

    def health(self) -> Health:
        info = self.driver.info if self.driver is not None else self._info
        return Health(self.name, self.port, self.state, info, self.error, self.since,
                      self.reopens, self.resets)

    async def send(self, number: str, text: str, *, status_report: bool = True,
                   on_commit: Callable[[], Awaitable[None]] | None = None) -> list[PartResult]:
        if self.driver is None or not self.available():
            raise ModemLost(f"{self.name}: modem {self.state} ({self.error or 'not open'})")
        driver = self.driver
        try:
            return await driver.send(number, text, status_report=status_report,
                                     on_commit=on_commit)
        except SendFailed as exc:
            if isinstance(exc.cause, SimUnavailable) and self.driver is driver:
                # unavailable from now on: the texts behind this one wait for the SIM
                self._set(DEGRADED, "; ".join(driver.info.problems) or str(exc.cause))
            raise

    async def wait_state(self, *states: str, timeout: float = 30.0) -> str:
        """Until the state is one of ``states`` (tests and the CLI use this)."""
        deadline = time.monotonic() + timeout
        while self.state not in states:
            self.state_changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: still {self.state}, wanted {states}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.state_changed.wait()
        return self.state

    # ---------------------------------------------------------------- loop

    def _set(self, state: str, error: str | None = None) -> None:
        if state != self.state or error != self.error:
            # a modem that is missing, lost or degraded needs a person: WARNING
            level = logging.INFO if state in (READY, INITIALISING) else logging.WARNING
            logfmt.log(log, level, "modem_state", modem=self.name, state=state, error=error)
            if state != self.state:
                self.since = time.monotonic()
            self.state, self.error = state, error
            self.state_changed.set()

    async def _drop(self) -> None:
        if self.driver is not None:
            self._info = self.driver.info
            await self.driver.close()
            self.driver = None

    async def run(self) -> None:
        was_open = False
        while True:
            if not os.path.exists(self.port):
                self._set(LOST if was_open else ABSENT, f"{self.port} not present")
                await asyncio.sleep(self.poll_interval)
                continue
            self._set(INITIALISING)
            driver = self._make()
            driver.message_handlers = self.message_handlers
            driver.report_handlers = self.report_handlers
            driver.pdu_journal = self.pdu_journal
            driver.held = self.held_pdus
            try:
                await driver.open()
                self.driver = driver
                info = await driver.initialise()
            except PortError as exc:
                await self._drop()
                self._set(LOST if was_open else ABSENT, str(exc))
                await asyncio.sleep(self.poll_interval)
                continue
            except ModemError as exc:
                await self._drop()
                self._set(LOST, f"initialisation failed: {exc}")
                await asyncio.sleep(self.poll_interval)
                continue
            if was_open:
                self.reopens += 1
            was_open = True
            self._set(DEGRADED if info.problems else READY, "; ".join(info.problems) or None)
            await self._watch(driver)
            await self._drop()

    @staticmethod
    async def _wait_any(lost: asyncio.Event, attention: asyncio.Event,
                        timeout: float) -> None:
        """Until the port goes, the SIM needs a look, or ``timeout`` s passed."""
        waits = [asyncio.create_task(lost.wait()), asyncio.create_task(attention.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _watch(self, driver: ModemDriver) -> None:
        """Health checks until the port goes or the modem stops answering."""
        failures = 0
        while True:
            interval = self.health_interval
            if driver.sim_absent:
                interval = min(interval, self.sim_poll_interval)
            await self._wait_any(driver.lost, driver.attention, interval)
            driver.attention.clear()
            if driver.lost.is_set():
                self._set(LOST, "the port went away (unplugged or re-enumerated)")
                return
            try:
                info = await driver.health()
                if driver.sim_returned:
                    self._set(INITIALISING, "a SIM is back: initialising again")
                    info = await driver.initialise()
                failures = 0
                self._set(DEGRADED if info.problems else READY,
                          "; ".join(info.problems) or None)
            except CommandTimeout as exc:
                failures += 1
                self._set(LOST, f"not answering: {exc}")
                if failures >= self.failures_before_reset:
                    self.resets += 1
                    with contextlib.suppress(ModemError, TimeoutError):
                        async with asyncio.timeout(5.0):
                            await driver.reset()
                    return
            except ModemLost:
                self._set(LOST, "the port went away (unplugged or re-enumerated)")
                return
            except ModemError as exc:
                self._set(DEGRADED, str(exc))
