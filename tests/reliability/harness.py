"""What the reliability tests share: a burst capture built from a real trace, a daemon
config, the daemon as a subprocess with its stderr kept, and readers of the store and of
what the simulated modem's network really accepted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ASTERISK_TRACES, REPO
from textback.testing.fake_ami import load_ts_capture
from textback.testing.lab_config import lab_config_toml
from textback.testing.modem_simulator import ModemSimulator

# A real Asterisk 22 capture of one inbound trunk call to extension 101 that nobody
# answered (caller +15551230001 → DID +15559870000, Dial NOANSWER): every burst below is
# this trace repeated, nothing invented beyond renumbering.
MISSED_CALL = ASTERISK_TRACES / "direct-noanswer.ami.ts"
REAL_CALLER = b"+15551230001"
REAL_EPOCH = b"1795395183."
SECRET = "reliability-secret-7Qx9"


def caller_for(i: int) -> str:
    """A distinct fictional +1555 number per call, the real caller's length."""
    return f"+1555{2000000 + i:07d}"


def burst_capture(path: Path, n: int, *, gap_s: float = 1.5,
                  mutate: Any = None) -> list[str]:
    """Write ``path``: ``n`` copies of the real missed-call trace, copy ``i`` starting
    ``i * gap_s`` s after the first (so calls overlap), each with its own Uniqueid/Linkedid
    epoch, channel suffixes and caller number. ``mutate(i, raw) -> raw`` may rewrite one
    copy's message bytes further (hostile caller IDs). Returns the callers, in order."""
    msgs = load_ts_capture(MISSED_CALL)
    body = [m for m in msgs if not m.raw.startswith((b"Asterisk Call Manager/",
                                                     b"Response: "))]
    # the login-time events (FullyBooted, SuccessfulAuth) once, at the start
    preamble = [m for m in body if b"Event: FullyBooted" in m.raw
                or b"Event: SuccessfulAuth" in m.raw]
    call = [m for m in body if m not in preamble]
    t0 = call[0].at
    timed: list[tuple[float, int, bytes]] = [(m.at - t0 - 0.001, -1, m.raw) for m in preamble]
    callers = []
    for i in range(n):
        caller = caller_for(i)
        callers.append(caller)
        for m in call:
            raw = (m.raw.replace(REAL_EPOCH, f"{1796000000 + i}.".encode())
                   .replace(b"-00000000", f"-{2 * i:08x}".encode())
                   .replace(b"-00000001", f"-{2 * i + 1:08x}".encode())
                   .replace(REAL_CALLER, caller.encode()))
            if mutate is not None:
                raw = mutate(i, raw)
            timed.append((m.at - t0 + i * gap_s, i, raw))
    timed.sort(key=lambda x: (x[0], x[1]))
    with path.open("wb") as f:
        for at, _, raw in timed:
            f.write(b"#TS %.6f\n" % (1796000000.0 + at))
            f.write(raw)
    return callers


def write_config(tmp: Path, ami_port: int, modem_port: str, *, mode: int = 0o600,
                 settle_s: float = 0.5, retry_base_s: float = 1.0, retry_max_s: float = 2.0,
                 max_attempts: int = 100, profile: str = "generic",
                 **sections: Any) -> Path:
    """The reliability suite's daemon config: the lab office (textback.testing.lab_config)
    on the fake AMI and one simulated modem, caps out of the way of a burst; ``sections``
    override it like :func:`~textback.testing.lab_config.lab_config` does."""
    policy = {"prefix_hour_cap": 100000, "global_hour_cap": 100000, "caller_day_cap": 100,
              "retry_base_s": retry_base_s, "retry_max_s": retry_max_s,
              "max_attempts": max_attempts, **sections.pop("policy", {})}
    trunks = {"settle_s": settle_s, **sections.pop("trunks", {})}
    text = lab_config_toml(ami_port=ami_port, modem_port=modem_port,
                           store=tmp / "textback.db", policy=policy, trunks=trunks,
                           modem=[{"name": "a", "port": modem_port, "profile": profile}],
                           pbx={"secret": SECRET, **sections.pop("pbx", {})}, **sections)
    path = tmp / "textback.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@dataclass
class DaemonProc:
    """``python -m textback run --config`` as its own process; stderr kept line by line."""

    config: Path
    logs: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "textback", "run", "--config", str(self.config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
            cwd=str(REPO))
        assert self.proc.stderr is not None
        self._pump = asyncio.create_task(self._read(self.proc.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.logs.append(line.decode("utf-8", "backslashreplace"))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed by the daemon."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._drain()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._drain()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def _drain(self) -> None:
        if self._pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pump, 2)


def read_store(db: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(calls, outbox rows), read-only; empty when the store does not exist yet."""
    if not db.exists():
        return [], []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
        con.row_factory = sqlite3.Row
        try:
            calls = [dict(r) for r in con.execute("SELECT * FROM calls ORDER BY id")]
            outbox = [dict(r) for r in con.execute("SELECT * FROM outbox ORDER BY id")]
        except sqlite3.Error:
            return [], []
    return calls, outbox


def settled(calls: list[dict[str, Any]], outbox: list[dict[str, Any]], expected: int) -> bool:
    """Every expected call recorded and decided, nothing queued or being sent."""
    return (len(calls) >= expected
            and all(c["decision"] is not None for c in calls if c["verdict"] == "missed")
            and not any(o["state"] in ("queued", "sending") for o in outbox))


def texted(sim: ModemSimulator) -> Counter[str]:
    """How many whole texts the simulated network accepted per number (a multi-part text
    counts once: its parts share a concat reference)."""
    seen: set[tuple[str | None, Any]] = set()
    out: Counter[str] = Counter()
    for acc in sim.accepted:
        d = acc.decoded
        key = (d.number, d.udh.concat_ref if d.udh else f"single-{acc.mr}")
        if key in seen:
            continue
        seen.add(key)
        out[d.number or ""] += 1
    return out


@dataclass
class Tally:
    """Missed calls lost / texted twice, from the store and what the network accepted."""

    missed_seen: int = 0
    texted_once: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def tally(calls: list[dict[str, Any]], outbox: list[dict[str, Any]],
          sent: Counter[str], truth: set[str]) -> Tally:
    """``truth``: the callers that were genuinely missed (every call of a burst built from
    the real missed-call trace). "Lost" = such a call the daemon recorded in its store
    (whatever verdict it gave it: it saw the call) that the network never got a text for,
    unless the store itself reports the row unconfirmed; "duplicated" = a number that got
    more than one text, unless its row is unconfirmed."""
    t = Tally()
    unconfirmed = {o["number"] for o in outbox if o["state"] == "unconfirmed"}
    t.unconfirmed = sorted(unconfirmed)
    missed = {c["caller"] for c in calls} & truth
    t.missed_seen = len(missed)
    for number in sorted(missed):
        n = sent.get(number, 0)
        if n == 1:
            t.texted_once += 1
        if n == 0 and number not in unconfirmed:
            t.lost.append(number)
        if n > 1 and number not in unconfirmed:
            t.duplicated.append(number)
    t.unexpected = sorted(set(sent) - truth)
    return t


# rows for RELIABILITY.md, printed by conftest.py at the end of the session
FIGURES: list[dict[str, Any]] = []


def record(fault: str, runs: int, recovered: int, lost: int, duplicated: int,
           worst_recovery_s: float | None, **extra: Any) -> None:
    FIGURES.append({"fault": fault, "runs": runs, "recovered": recovered, "lost": lost,
                    "duplicated": duplicated, "worst_recovery_s": worst_recovery_s, **extra})


def wire_tap(sim: ModemSimulator) -> bytearray:
    """Every byte the simulated modem receives from the daemon, in order."""
    wire = bytearray()
    feed = sim.engine.feed

    def tapped(data: bytes) -> None:
        wire.extend(data)
        feed(data)

    sim.engine.feed = tapped  # type: ignore[method-assign]
    return wire


def listeners_of(pid: int) -> list[tuple[str, int]]:
    """(local address hex, port) of every TCP socket of ``pid`` in LISTEN state, read from
    /proc (no psutil): the process's socket inodes matched against /proc/net/tcp{,6}."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:
                addr, port = cols[1].split(":")
                out.append((addr, int(port, 16)))
    return out


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}


@dataclass
class OneRun:
    logs: list[str]
    wire: bytes
    calls: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    sent: Counter[str]
    listeners: list[tuple[str, int]]
    status: int
    connections: int = 0


async def run_once(tmp: Path, n_calls: int, *, mutate: Any = None,
                   config: dict[str, Any] | None = None, timeout: float = 25.0,
                   **ami_faults: Any) -> OneRun:
    """A burst of ``n_calls`` through the daemon subprocess, no faults; until settled."""
    from textback.testing.fake_ami import FakeAmi

    capture = tmp / "burst.ami.ts"
    burst_capture(capture, n_calls, gap_s=0.5, mutate=mutate)
    ami = FakeAmi.from_capture(capture, speed=10.0, secret=SECRET)
    for key, value in ami_faults.items():  # drop_at / silent_at / lost_on_fault
        setattr(ami, key, value)
    _, port = await ami.start("127.0.0.1", 0)
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-reliability", time_scale=0.02)
    await sim.start()
    wire = wire_tap(sim)
    daemon = DaemonProc(write_config(tmp, port, sim.port, **(config or {})))
    listeners: list[tuple[str, int]] = []
    try:
        await daemon.start()
        assert daemon.proc is not None
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline and daemon.running:
            await asyncio.sleep(0.3)
            if not listeners:
                with contextlib.suppress(OSError):
                    listeners = listeners_of(daemon.proc.pid)
            calls, outbox = read_store(tmp / "textback.db")
            if ami.finished.is_set() and settled(calls, outbox, 1):
                await asyncio.sleep(1.5)  # the last call's settle window
                calls, outbox = read_store(tmp / "textback.db")
                if settled(calls, outbox, 1):
                    break
        status = await daemon.stop()
    finally:
        await ami.close()
        await sim.stop()
    calls, outbox = read_store(tmp / "textback.db")
    return OneRun(daemon.logs, bytes(wire), calls, outbox, texted(sim), listeners, status,
                  ami.connections)


# ------------------------------------------------------------------ fault-injection rigs
# (modem, PBX link and storage faults: tests/reliability/test_{modem,pbx,storage}_faults.py)


async def until(pred: Any, timeout: float, step: float = 0.05) -> float | None:
    """Poll ``pred()`` every ``step`` s; the monotonic time it first held, None on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if pred():
            return time.monotonic()
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(step)


def logged(logs: list[str], *fragments: str) -> bool:
    """True once a single stderr line holds every fragment."""
    return any(all(f in line for f in fragments) for line in logs)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a server started later)."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def delay_calls(ami: Any, seconds: float) -> None:
    """Push every call event of a FakeAmi burst ``seconds`` (wall time) later, so a fault
    can be in place before the first call starts; the login-time events stay first."""
    ami.events = [
        m if b"Event: FullyBooted" in m.raw or b"Event: SuccessfulAuth" in m.raw
        else dataclasses.replace(m, at=m.at + seconds * ami.speed) for m in ami.events]


def first_accept_after(sim: ModemSimulator, t: float) -> float | None:
    """The monotonic time of the first PDU the network accepted at or after ``t``."""
    times = [a.at for a in sim.accepted if a.at >= t]
    return min(times) if times else None


def edit_config(config: Path, section: str, *lines: str) -> Path:
    """Add ``lines`` right under the ``[section]`` (or ``[[section]]``) header of a config
    written by :func:`write_config`."""
    text = config.read_text()
    header = f"[[{section}]]\n" if f"[[{section}]]\n" in text else f"[{section}]\n"
    assert header in text, f"no {header.strip()} in {config}"
    config.write_text(text.replace(header, header + "".join(f"{x}\n" for x in lines), 1))
    return config


@dataclass
class Rig:
    """One daemon subprocess between a FakeAmi burst and a ModemSimulator, for fault tests."""

    tmp: Path
    ami: Any
    sim: ModemSimulator
    config: Path
    callers: list[str]
    daemon: DaemonProc
    ami_port: int
    ami_writers: list[Any] = field(default_factory=list)  # every AMI connection served

    def abort_ami(self) -> None:
        """Abort every AMI connection the fake PBX holds (as a dying PBX host would)."""
        for w in self.ami_writers:
            w.transport.abort()

    @property
    def db(self) -> Path:
        return self.tmp / "textback.db"

    @property
    def logs(self) -> list[str]:
        return self.daemon.logs

    def store(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return read_store(self.db)

    def all_texted(self) -> bool:
        sent = texted(self.sim)
        return all(sent.get(c, 0) >= 1 for c in self.callers)

    async def settle(self, timeout: float = 30.0) -> bool:
        """Until the burst has played, every caller is recorded, the store is settled and
        every caller got a text (then one more settle window, to catch a late duplicate)."""
        def done() -> bool:
            calls, outbox = self.store()
            return (self.ami.finished.is_set() and len(calls) >= len(self.callers)
                    and settled(calls, outbox, len(self.callers)) and self.all_texted())
        ok = await until(done, timeout, 0.2) is not None
        await asyncio.sleep(0.5)
        return ok

    def tally(self) -> Tally:
        calls, outbox = self.store()
        return tally(calls, outbox, texted(self.sim), set(self.callers))


@contextlib.asynccontextmanager
async def rig(tmp: Path, n_calls: int, *, gap_s: float = 0.5, speed: float = 10.0,
              lead_s: float = 0.0, pin: str | None = None, time_scale: float = 0.02,
              configure: Any = None, start_daemon: bool = True, profile: str = "generic",
              **ami_faults: Any) -> AsyncIterator[Rig]:
    """A burst of ``n_calls`` (the real missed-call trace, renumbered) served by FakeAmi
    with ``ami_faults``, calls held back ``lead_s`` s after login; a ModemSimulator behind
    a by-id style link (``profile`` its dialect, ``pin`` locks its SIM);
    ``configure(config_path)`` may edit the
    config before the daemon starts. Everything is stopped on the way out."""
    from textback.testing.fake_ami import FakeAmi

    tmp.mkdir(parents=True, exist_ok=True)
    capture = tmp / "burst.ami.ts"
    callers = burst_capture(capture, n_calls, gap_s=gap_s)
    ami = FakeAmi.from_capture(capture, speed=speed, secret=SECRET)
    for key, value in ami_faults.items():
        setattr(ami, key, value)
    if lead_s:
        delay_calls(ami, lead_s)
    writers: list[Any] = []
    serve = ami._serve

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await serve(reader, writer)

    ami._serve = tracked
    _, port = await ami.start("127.0.0.1", 0)
    sim = ModemSimulator(profile, link=tmp / "ttyUSB-reliability", time_scale=time_scale,
                         pin=pin)
    await sim.start()
    config = write_config(tmp, port, sim.port, profile=profile)
    edit_config(config, "policy", "burst_calls = 0")  # one +1555 prefix, many calls
    if configure is not None:
        configure(config)
    daemon = DaemonProc(config)
    r = Rig(tmp, ami, sim, config, callers, daemon, port, writers)
    try:
        if start_daemon:
            await daemon.start()
        yield r
    finally:
        try:
            if daemon.proc is not None:
                await daemon.stop()
        finally:
            await r.ami.close()
            await sim.stop()
