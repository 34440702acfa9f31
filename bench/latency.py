"""Decisive AMI event → first byte of AT+CMGS on the simulated modem's pty.

The event stream is a real Asterisk 22 capture of one missed inbound call
(../shared/traces/asterisk-22/direct-busy.ami.ts: caller +15551230002 → DID +15559870000,
Dial BUSY) repeated N times, each copy renumbered (Uniqueid/Linkedid epoch, channel
suffixes, caller number; distinct callers so cooldown and caps never skip one). Each copy's
events keep their order, compressed to ~11 ms, and copies start ``GAP_S`` apart so every
text is out before the next decisive event (this measures latency, not queueing).

t0: the fake AMI server is about to write the call's final ``Hangup`` (the event that
decides the call). t1: the simulated modem reads the bytes completing ``AT+CMGS``; the
PDU that follows names the caller, which ties t1 to its call. The real daemon (``Daemon``,
in this process) runs with send_delay_s = 0 and settle_s = 0 (the tracker decides on the
Hangup itself). Idle CPU: this process's CPU time over 5 s with the daemon running and no
calls (the fake AMI server and the simulator idle in the same process).

``--dead-hooks``: the same run with two ``[[webhook]]``s subscribed to every event, one
whose port refuses connections and one (an aiohttp server in this process) that accepts
each request and never answers; a dead hook must not move these figures (textback.webhooks
delivers from its own task). Its full run merges under "latency_dead_hooks".

Last line: {"p50_ms": …, "p99_ms": …, "n": …, "idle_cpu_pct": …}; a full run (1000 calls)
merges its figures into bench/results.json under "latency".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import caller_for  # noqa: E402  (one 7-digit prefix per caller)
from bench._results import merge_results  # noqa: E402
from textback.config import parse_config  # noqa: E402
from textback.daemon import Daemon  # noqa: E402
from textback.testing.fake_ami import FakeAmi, TimedMessage, load_ts_capture  # noqa: E402
from textback.testing.lab_config import lab_config_toml  # noqa: E402
from textback.testing.modem_simulator import ModemSimulator  # noqa: E402

CAPTURE = REPO.parent / "shared" / "traces" / "asterisk-22" / "direct-busy.ami.ts"
REAL_EPOCH = b"1795395197."
REAL_CALLER = b"+15551230002"
SECRET = "bench-latency-secret"
GAP_S = 0.03
COMPRESS = 0.01  # the capture's 1.1 s call played in 11 ms

def config_toml(*, port: int, modem: str, store: Path, hooks: Sequence[str] = ()) -> str:
    """The lab office (textback.testing.lab_config) with settle 0 and caps out of the way."""
    return lab_config_toml(ami_port=port, modem_port=modem, store=store,
                           pbx={"secret": SECRET}, trunks={"settle_s": 0},
                           policy={"caller_day_cap": 100, "prefix_hour_cap": 1000000,
                                   "global_hour_cap": 1000000},
                           webhook=[{"url": u, "secret": "bench-webhook-secret-0123",
                                     "timeout_s": 10} for u in hooks] or None)


async def dead_hooks() -> tuple[list[str], Any]:
    """A refused URL and a hanging one (its runner, to clean up)."""
    from aiohttp import web

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()
    app = web.Application()
    app.router.add_post("/hook", hang)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return [f"http://127.0.0.1:{refused}/hook", f"http://127.0.0.1:{port}/hook"], runner


def build_stream(n: int, lead_s: float) -> tuple[list[TimedMessage], dict[int, str]]:
    """The renumbered stream (first call ``lead_s`` after login, leaving the idle-CPU
    window before it) and, per event index, the caller whose call it decides."""
    msgs = [m for m in load_ts_capture(CAPTURE)
            if not m.raw.startswith((b"Asterisk Call Manager/", b"Response: "))]
    preamble = [m for m in msgs if b"Event: FullyBooted" in m.raw
                or b"Event: SuccessfulAuth" in m.raw]
    call = [m for m in msgs if m not in preamble]
    last_hangup = max(i for i, m in enumerate(call) if m.raw.startswith(b"Event: Hangup"))
    t0 = call[0].at
    events = [TimedMessage(0.0, m.raw) for m in preamble]
    decisive: dict[int, str] = {}
    for i in range(n):
        caller = caller_for(i)
        start = lead_s + i * GAP_S
        for j, m in enumerate(call):
            raw = (m.raw.replace(REAL_EPOCH, f"{1797000000 + i}.".encode())
                   .replace(b"-00000002", f"-{2 * i:08x}".encode())
                   .replace(b"-00000003", f"-{2 * i + 1:08x}".encode())
                   .replace(REAL_CALLER, caller.encode()))
            if j == last_hangup:
                decisive[len(events)] = caller
            events.append(TimedMessage(start + (m.at - t0) * COMPRESS, raw))
    return events, decisive


class TimedAmi(FakeAmi):
    """The fake AMI server, noting when it writes each call's decisive event."""

    decisive: dict[int, str]
    t0: dict[str, float]

    def _happen(self, raw: bytes) -> None:
        caller = self.decisive.get(self.cursor)
        if caller is not None:
            self.t0[caller] = time.perf_counter()
        super()._happen(raw)


def hook_modem(sim: ModemSimulator, t1: dict[str, float]) -> None:
    """Time the read completing ``AT+CMGS``; the accepted PDU names its caller."""
    engine = sim.engine
    feed = engine.feed
    state: dict[str, Any] = {"tail": b"", "at": None}

    def timed_feed(data: bytes) -> None:
        now = time.perf_counter()
        if b"AT+CMGS" in state["tail"][-7:] + data:
            state["at"] = now
        state["tail"] = (state["tail"] + data)[-16:]
        before = len(engine.accepted)
        feed(data)
        for acc in engine.accepted[before:]:
            number = acc.decoded.number
            if number and state["at"] is not None and number not in t1:
                t1[number] = state["at"]

    engine.feed = timed_feed  # type: ignore[method-assign]


async def measure(n: int, idle_s: float, with_dead_hooks: bool = False) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="textback-bench-latency-"))
    events, decisive = build_stream(n, lead_s=idle_s + 4.0)
    ami = TimedAmi(events=events, speed=1.0, secret=SECRET)
    ami.decisive, ami.t0 = decisive, {}
    _, port = await ami.start("127.0.0.1", 0)
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-bench", time_scale=0.0)
    await sim.start()
    t1: dict[str, float] = {}
    hook_modem(sim, t1)
    hooks, hook_runner = await dead_hooks() if with_dead_hooks else ([], None)
    config = parse_config(config_toml(port=port, modem=sim.port, store=tmp / "textback.db",
                                      hooks=hooks),
                          tmp / "textback.toml", check_permissions=False)
    daemon = Daemon(config, modem_poll_s=1.0)
    task = asyncio.create_task(daemon.run())
    try:
        deadline = time.monotonic() + 20
        while not (daemon.senders.get("modem:a") and daemon.senders["modem:a"].available()
                   and ami.logins):
            if time.monotonic() > deadline or task.done():
                raise RuntimeError("daemon did not start (modem or AMI login)")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(idle_s)
        idle_cpu = 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        idle_clean = not ami.t0  # no call decided inside the idle window
        deadline = time.monotonic() + 30 + n * 0.1
        while len(t1) < n and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 30)
        await ami.close()
        await sim.stop()
        if hook_runner is not None:
            await hook_runner.cleanup()
    lat = sorted((t1[c] - ami.t0[c]) * 1000.0 for c in t1 if c in ami.t0)
    if len(lat) < n:
        print(f"latency: only {len(lat)} of {n} calls were texted", file=sys.stderr)
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] if lat else None
    return {"p50_ms": round(statistics.median(lat), 2) if lat else None,
            "p99_ms": round(p99, 2) if p99 is not None else None,
            "max_ms": round(lat[-1], 2) if lat else None,
            "n": len(lat), "calls": n, "idle_cpu_pct": round(idle_cpu, 2),
            "idle_window_clean": idle_clean,
            "settle_s": 0, "send_delay_s": 0, "capture": CAPTURE.name,
            "dead_hooks": with_dead_hooks}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="150 calls (under 30 s)")
    ap.add_argument("-n", type=int, help="number of calls (default 1000, 150 with --quick)")
    ap.add_argument("--dead-hooks", action="store_true",
                    help="with a refused and a never-answering [[webhook]]")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    n = args.n or (150 if args.quick else 1000)
    figures = asyncio.run(measure(n, idle_s=5.0, with_dead_hooks=args.dead_hooks))
    if not args.quick and args.n is None:
        merge_results("latency_dead_hooks" if args.dead_hooks else "latency", figures)
    print(json.dumps(figures))
    return 0 if figures["n"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
