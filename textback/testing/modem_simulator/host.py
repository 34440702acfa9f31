"""The simulated modem on a pseudo-terminal: the driver opens it like any /dev/ttyUSBn.

``os.openpty`` gives a master (ours) and a slave (/dev/pts/N, the "modem port"); a symlink
plays the stable /dev/serial/by-id/... name. Unplugging closes the pty and removes the link;
replugging creates a NEW pty (a new /dev/pts/N, like a new ttyUSBn after re-enumeration) and
points the same link at it, then boots the engine again. Runs as tasks on the caller's
asyncio loop, so tests need no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path

from textback.testing.modem_simulator.engine import AcceptedPdu, ModemEngine
from textback.testing.modem_simulator.profiles import PROFILES, Profile

# Noise seen between a Ctrl-Z and the real "+CMGS: <mr>" (issue 12). Framed as the modem
# frames every result code in the captures (transcripts.jsonl: "\r\n<code>\r\n", V.250
# verbose mode); the garbage is what a bad cable or a baud-rate glitch gives: undecodable
# bytes, a control sequence, and a printable fragment that is no result code at all.
NOISE: dict[str, bytes] = {
    "stray-ok": b"\r\nOK\r\n",
    "garbage-then-ok": b"\r\n\xff\xfe\x1b[0m\r\n~#K+C\r\nOK\r\n",
    "bare-error": b"\r\nERROR\r\n",
}


class ModemSimulator:
    """A modem on a pty. ``time_scale`` multiplies every profile delay (0 = instant)."""

    def __init__(
        self,
        profile: str | Profile = "generic",
        *,
        link: str | os.PathLike[str] | None = None,
        time_scale: float = 0.0,
        pin: str | None = None,
        auto_reports: bool = True,
        periodic_urcs: bool = True,
    ) -> None:
        if isinstance(profile, str):
            if profile not in PROFILES:
                raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
            profile = PROFILES[profile]
        self.profile = profile
        self.engine = ModemEngine(profile, pin=pin, auto_reports=auto_reports)
        self.link = Path(link) if link is not None else None
        self.time_scale = time_scale
        self.periodic_urcs = periodic_urcs
        self.hung = False
        self.present = False
        self.slave_path = ""
        self.generation = 0  # how many times the device (re)appeared
        self._master = -1
        self._slave = -1
        self._queue: asyncio.Queue[tuple[float, bytes]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._periodic: asyncio.Task[None] | None = None
        self._unhang: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def port(self) -> str:
        """The path a driver should open: the link if any, else the pty slave."""
        return str(self.link) if self.link is not None else self.slave_path

    @property
    def accepted(self) -> list[AcceptedPdu]:
        return self.engine.accepted

    async def start(self) -> ModemSimulator:
        self._loop = asyncio.get_running_loop()
        self._plug()
        return self

    async def stop(self) -> None:
        self._unplug()
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    async def __aenter__(self) -> ModemSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _plug(self) -> None:
        assert self._loop is not None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.slave_path = os.ttyname(self._slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(self.slave_path, tmp)
            os.replace(tmp, self.link)
        self.present = True
        self.generation += 1
        self._queue = asyncio.Queue()
        self._writer = self._loop.create_task(self._write_loop(self._queue, self._master))
        self._loop.add_reader(self._master, self._on_readable)
        if self.periodic_urcs and self.profile.periodic_urc and self.time_scale > 0:
            self._periodic = self._loop.create_task(self._periodic_loop())
        self.engine.boot()
        self._flush()

    def _unplug(self) -> None:
        if not self.present:
            return
        self.present = False
        assert self._loop is not None
        self._loop.remove_reader(self._master)
        for task in (self._writer, self._periodic):
            if task is not None:
                task.cancel()
        self._writer = self._periodic = None
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    # ---------------------------------------------------------------- I/O

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        if self.hung or not data:
            return
        self.engine.feed(data)
        self._flush()

    def _flush(self) -> None:
        for delay, data in self.engine.take_output():
            self._send(delay, data)
        for seconds, data in self.engine.take_late():
            if self._loop is not None:  # real seconds, not scaled: the fault's own clock
                self._loop.call_later(seconds, self._send, 0.0, data)

    def _send(self, delay: float, data: bytes) -> None:
        if self._queue is None or not self.present:
            return
        self._queue.put_nowait((delay * self.time_scale, data))

    async def _write_loop(self, queue: asyncio.Queue[tuple[float, bytes]], fd: int) -> None:
        """One writer keeps the order of everything the engine said, pauses included."""
        while True:
            pause, item = await queue.get()
            if pause > 0:
                await asyncio.sleep(pause)
            if self.hung:
                continue
            data = memoryview(item)
            while data:
                try:
                    n = os.write(fd, data)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                except OSError:
                    return
                data = data[n:]

    async def _periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.profile.periodic_seconds * self.time_scale)
            if not self.hung:
                self.engine.periodic()
                self._flush()

    # ---------------------------------------------------------------- failure injection

    def inject_sms(self, sender: str, text: str, *, direct: bool | None = None,
                   concat_ref: int = 0x42) -> list[str]:
        """A text arrives from ``sender`` (+CMTI or +CMT per AT+CNMI, or forced)."""
        pdus = self.engine.inject_sms(sender, text, direct=direct, concat_ref=concat_ref)
        self._flush()
        return pdus

    def inject_pdu(self, pdu: str, length: int | None = None) -> int:
        """A raw DELIVER PDU (hex) stored on the SIM and announced; its storage index."""
        idx = self.engine.inject_pdu(pdu, length)
        self._flush()
        return idx

    def inject_report(self, mr: int, recipient: str, *, status: int = 0) -> str:
        pdu = self.engine.inject_report(mr, recipient, status=status)
        self._flush()
        return pdu

    def garble(self, data: bytes) -> None:
        """Write raw noise onto the line, as a bad cable or wrong baud rate would."""
        self._send(0.0, data)

    def set_network(self, registered: bool) -> None:
        """False: not registered; AT+CMGS then ends in +CMS ERROR: 500 (E3531, gammu #438)."""
        self.engine.registered = registered

    def remove_sim(self) -> None:
        """Pull the SIM out: +CME ERROR: 10 / +CMS ERROR: 310, not registered, and the
        dialect's removal URC (SIM800 "+CPIN: NOT READY", EC25 "+CPIN: NOT INSERTED")."""
        self.engine.remove_sim()
        self._flush()

    def insert_sim(self) -> None:
        """Push it back: it wants its PIN again if it has one; "+CPIN: READY" / "+CPIN:
        SIM PIN" on the dialects that say so."""
        self.engine.insert_sim()
        self._flush()

    def stall_after_pdu(self, seconds: float | None = None, *, count: int = 1) -> None:
        """The next ``count`` PDUs are taken by the network but their ``+CMGS: <mr>`` /
        OK comes ``seconds`` (real time) late, or never (None). Later commands are answered
        as usual: the modem hung on that answer only."""
        self.engine.submit_stalls.extend([seconds] * count)

    def noise_after_pdu(self, noise: bytes, *, count: int = 1) -> None:
        """The next ``count`` accepted PDUs get ``noise`` on the line between their Ctrl-Z
        and their answer: a stray result code (``NOISE["stray-ok"]``), line garbage then
        OK, a bare ERROR, or any bytes. The network still takes the PDU and the real
        ``+CMGS: <mr>`` / OK follows as usual (combine with ``stall_after_pdu`` to have it
        come late or never)."""
        self.engine.submit_noise.extend([noise] * count)

    def hang(self, seconds: float | None = None) -> None:
        """Stop answering (input swallowed, nothing written) for ``seconds`` or until unhang."""
        self.hung = True
        if self._unhang is not None:
            self._unhang.cancel()
        if seconds is not None and self._loop is not None:
            self._unhang = self._loop.call_later(seconds, self.unhang)

    def unhang(self) -> None:
        self.hung = False

    def disappear(self) -> None:
        """USB unplug: the pty closes under the driver and the by-id link goes away."""
        self._unplug()
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def reappear(self) -> None:
        """USB replug: a new pty behind the same link; the modem boots again."""
        if not self.present:
            self._plug()
