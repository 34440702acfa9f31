"""Shared by the comparison benches: a call stream, a controllable AMI server, a modem
simulator that stamps the first byte of every AT+CMGS, percentiles and process CPU.

The call stream is the real Asterisk 22 capture ``direct-noanswer.ami.ts`` (one inbound
call from the trunk ringing 101 until NOANSWER), renumbered per call the way
bench/ami_ingest.py renumbers it (each call gets its own Uniqueid/Linkedid epoch prefix)
and with its own caller number, so every call is a new missed call from a new caller.
Nothing here invents an event: every byte is one Asterisk sent, only ids and the caller
number differ.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from textback.testing.fake_ami import FakeAmi, load_ts_capture
from textback.testing.modem_simulator import ModemSimulator

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO.parent / "shared" / "traces" / "asterisk-22" / "direct-noanswer.ami.ts"
PREFIX = b"1795395"
CAPTURE_CALLER = b"15551230001"
SECRET = "bench-only-secret"
TEXT = ("Sorry we missed your call - Acme Plumbing. Book at https://acme.example/book "
        "or reply here. Reply STOP to opt out")


def caller_for(i: int) -> str:
    """The E.164 caller of call ``i`` (fictional +1555 numbers, as in the captures), each
    in its own 7-digit prefix: textback pauses texts to a prefix after a burst of missed
    calls from it (a dialler or an attack), which a stream of distinct customers is not."""
    return f"+1555{i % 1000:03d}{3000 + i // 1000:04d}"


@dataclass(frozen=True)
class CallBytes:
    """One call's AMI bytes: before the decisive event, the decisive event, after it."""

    caller: str
    pre: bytes
    decisive: bytes
    post: bytes


def _call_messages() -> list[bytes]:
    msgs = load_ts_capture(CAPTURE)
    return [m.raw for m in msgs if not m.raw.startswith((b"Asterisk Call Manager/",
                                                         b"Response: "))
            and b"Event: FullyBooted" not in m.raw and b"Event: SuccessfulAuth" not in m.raw]


def make_call(i: int) -> CallBytes:
    """Call ``i``: the capture with unique ids and caller. The decisive event is the last
    ``Hangup`` (the call's last channel gone: with settle 0 the verdict is known then)."""
    raws = _call_messages()
    last_hangup = max(k for k, r in enumerate(raws) if r.startswith(b"Event: Hangup\r\n"))
    caller = caller_for(i)

    def fix(raw: bytes) -> bytes:
        return raw.replace(PREFIX, str(int(PREFIX) + 1 + i).encode()).replace(
            CAPTURE_CALLER, caller[1:].encode())

    return CallBytes(caller, b"".join(fix(r) for r in raws[:last_hangup]),
                     fix(raws[last_hangup]), b"".join(fix(r) for r in raws[last_hangup + 1:]))


class ControlledAmi(FakeAmi):
    """FakeAmi answering Login/Ping/Events/CoreShowChannels in Asterisk's words, but whose
    events are pushed by the bench (``play``) instead of a capture's timeline."""

    def __init__(self) -> None:
        super().__init__(events=[], secret=SECRET)
        self.writers: list[asyncio.StreamWriter] = []
        self.logged_in = asyncio.Event()

    async def _stream(self, writer: asyncio.StreamWriter, state: dict[str, bool]) -> None:
        self.writers.append(writer)
        self.logged_in.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.writers.remove(writer)
            if not self.writers:
                self.logged_in.clear()

    def play(self, data: bytes) -> None:
        """Write ``data`` to every logged-in client now (and keep the channel table)."""
        for raw in data.split(b"\r\n\r\n"):
            if raw.strip():
                self._happen(raw + b"\r\n\r\n")
        for w in self.writers:
            w.write(data)


_CMGS = re.compile(rb"AT\+CMGS", re.IGNORECASE)


class StampingSimulator(ModemSimulator):
    """ModemSimulator that records ``time.monotonic()`` when the chunk holding the first
    byte of each ``AT+CMGS`` command is read off the pty, and everything the host wrote."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.cmgs_at: list[float] = []
        self.cmgs_seen = asyncio.Event()
        self.heard = bytearray()
        self._tail = b""

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:
            return
        now = time.monotonic()
        if os.environ.get("BENCH_DEBUG"):
            print(f"{now:.3f} modem heard {bytes(data)[:60]!r}", file=sys.stderr)
        if data:
            if len(self.heard) < 1_000_000:
                self.heard += data
            window = self._tail + data
            for m in _CMGS.finditer(window):
                if m.end() > len(self._tail):  # not already counted with the last chunk
                    self.cmgs_at.append(now)
                    self.cmgs_seen.set()
            self._tail = window[-7:]
        if self.hung or not data:
            return
        self.engine.feed(data)
        self._flush()

    async def wait_cmgs(self, count: int, timeout: float) -> float | None:
        """The stamp of the ``count``-th AT+CMGS, or None if it does not come in time."""
        deadline = time.monotonic() + timeout
        while len(self.cmgs_at) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.cmgs_seen.clear()
            try:
                await asyncio.wait_for(self.cmgs_seen.wait(), left)
            except TimeoutError:
                return None
        return self.cmgs_at[count - 1]

    async def wait_accepted(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True


    async def wait_idle(self) -> None:
        """Until the last accepted part's ``+CMGS: <mr>`` / ``OK`` has been written (the
        profile's submit time after the PDU), so the sender is free for the next call."""
        await asyncio.sleep(self.profile.timing.submit * self.time_scale + 0.03)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was really measured."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


@dataclass
class Latencies:
    name: str
    ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        return {"n": len(self.ms), "p50_ms": round(percentile(self.ms, 50), 2),
                "p99_ms": round(percentile(self.ms, 99), 2),
                "max_ms": round(max(self.ms), 2) if self.ms else float("nan"),
                "failed": len(self.failures)}


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of one process, seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant (smsd forks a modem process and a notifier)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        tree += kids
        frontier += kids
    return tree


async def idle_cpu(root: int, seconds: float) -> float:
    """CPU seconds per wall second the process tree of ``root`` used while left idle."""
    pids = process_tree(root)
    before = sum(_proc_cpu_s(p) for p in pids)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    after = sum(_proc_cpu_s(p) for p in process_tree(root))
    return (after - before) / (time.monotonic() - t0)
