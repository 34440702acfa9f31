"""Decisive AMI event → first byte of AT+CMGS on the simulated modem's pty.

The event stream is a real Asterisk 22 capture of one missed inbound call
(../shared/traces/asterisk-22/direct-busy.ami.ts: caller +15551230002 → DID +15559870000,
Dial BUSY) repeated N times, each copy renumbered (Uniqueid/Linkedid epoch, channel
suffixes, caller number; distinct callers so cooldown and caps never skip one). Each copy's
events keep their order and their recorded pace (the call's 45 events span 2.6 ms; played
faster, the whole call would land in one read after t0 and its parsing would count as
latency, which no PBX causes), and copies start ``GAP_S`` (plus the settle window) apart
so every text is out before the next decisive event (this measures latency, not queueing).

t0: the fake AMI server is about to write the call's final ``Hangup`` (the event that
decides the call). t1: the simulated modem reads the bytes completing ``AT+CMGS``; the
PDU that follows names the caller, which ties t1 to its call. The real daemon (``Daemon``,
in this process) runs twice, each with a config built by textback.testing.lab_config:

* **default config** (what users run): the shipped defaults except ``send_delay_s = 0``
  (``settle_s`` is NOT overridden: the shipped window, bench/settle_gap.py);
* **settle 0**: the same with ``settle_s = 0`` (the tracker decides on the Hangup itself):
  the path alone, from the decisive event through the store to the modem.

Idle CPU: this process's CPU time over 5 s with the settle-0 daemon running and no calls.

``--burst N``: N missed calls whose decisive events all fall within one second (default
config); each call's decisive event → its text committed to the outbox (the pipeline's
decide transaction), p50/p99 as ``burst_p50_ms``/``burst_p99_ms``.

``--dead-hooks``: the default-config run again with two ``[[webhook]]``s subscribed to every
event, one whose port refuses connections and one (an aiohttp server in this process) that
accepts each request and never answers; a dead hook must not move the figure (textback.webhooks
delivers from its own task): ``dead_hooks_p50_ms``/``dead_hooks_p99_ms``.

Last line: {"default_config_p50_ms", "default_config_p99_ms", "p50_ms", "p99_ms" (settle
0), "n", "idle_cpu_pct", "settle_s" (the default's), ... [, "burst_*"]}; a full run (1000
calls) merges its figures into bench/results.json under "latency".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import caller_for  # noqa: E402  (one 7-digit prefix per caller)
from bench._results import merge_results  # noqa: E402
from textback.config import parse_config  # noqa: E402
from textback.daemon import Daemon  # noqa: E402
from textback.outbound.pipeline import CallPipeline  # noqa: E402
from textback.store import Store  # noqa: E402
from textback.testing.fake_ami import FakeAmi, TimedMessage, load_ts_capture  # noqa: E402
from textback.testing.lab_config import lab_config_toml  # noqa: E402
from textback.testing.modem_simulator import ModemSimulator  # noqa: E402

CAPTURE = REPO.parent / "shared" / "traces" / "asterisk-22" / "direct-busy.ami.ts"
REAL_EPOCH = b"1795395197."
REAL_CALLER = b"+15551230002"
SECRET = "bench-latency-secret"
GAP_S = 0.03
PACE = 1.0  # the capture's own timing between a call's events

def config_toml(*, port: int, modem: str, store: Path, settle_s: float | None,
                hooks: Sequence[str] = ()) -> str:
    """The lab office (textback.testing.lab_config: shipped defaults, send_delay_s 0) with
    the caps out of the way; ``settle_s`` None keeps the shipped window."""
    trunks = {} if settle_s is None else {"settle_s": settle_s}
    return lab_config_toml(ami_port=port, modem_port=modem, store=store,
                           pbx={"secret": SECRET}, trunks=trunks,
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


def build_stream(n: int, lead_s: float, gap_s: float = GAP_S
                 ) -> tuple[list[TimedMessage], dict[int, str]]:
    """The renumbered stream (first call ``lead_s`` after login, leaving the idle-CPU
    window before it; calls ``gap_s`` apart) and, per event index, the caller whose call
    it decides."""
    msgs = [m for m in load_ts_capture(CAPTURE)
            if not m.raw.startswith((b"Asterisk Call Manager/", b"Response: "))]
    preamble = [m for m in msgs if b"Event: FullyBooted" in m.raw
                or b"Event: SuccessfulAuth" in m.raw]
    call = [m for m in msgs if m not in preamble]
    last_hangup = max(i for i, m in enumerate(call) if m.raw.startswith(b"Event: Hangup"))
    t0 = call[0].at
    events = [TimedMessage(0.0, m.raw) for m in preamble]
    timed: list[tuple[float, int, bytes, str | None]] = []
    for i in range(n):
        caller = caller_for(i)
        start = lead_s + i * gap_s
        for j, m in enumerate(call):
            raw = (m.raw.replace(REAL_EPOCH, f"{1797000000 + i}.".encode())
                   .replace(b"-00000002", f"-{2 * i:08x}".encode())
                   .replace(b"-00000003", f"-{2 * i + 1:08x}".encode())
                   .replace(REAL_CALLER, caller.encode()))
            timed.append((start + (m.at - t0) * PACE, len(timed), raw,
                          caller if j == last_hangup else None))
    decisive: dict[int, str] = {}
    for at, _, raw, decided in sorted(timed):  # overlapping calls (a burst) interleave
        if decided is not None:
            decisive[len(events)] = decided
        events.append(TimedMessage(at, raw))
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


@contextlib.contextmanager
def hook_enqueued(enqueued: dict[str, float]) -> Iterator[None]:
    """Note when each call's decide transaction (record, policy, outbox) commits: the
    pipeline's batch names its callers, the store's ``run`` says when it is done."""
    handle_batch, run = CallPipeline.handle_batch, Store.run
    batch: list[str] = []

    async def timed_batch(self: CallPipeline, outcomes: list[Any]) -> Any:
        batch[:] = [o.caller for o in outcomes if o.caller]
        return await handle_batch(self, outcomes)

    async def timed_run(self: Store, operation: str, body: Any) -> Any:
        result = await run(self, operation, body)
        if operation == "record_outcome":
            now = time.perf_counter()
            for caller in batch:
                enqueued.setdefault(caller, now)
        return result

    CallPipeline.handle_batch = timed_batch  # type: ignore[method-assign]
    Store.run = timed_run  # type: ignore[method-assign]
    try:
        yield
    finally:
        CallPipeline.handle_batch = handle_batch  # type: ignore[method-assign]
        Store.run = run  # type: ignore[method-assign]


def _percentiles(lat: list[float]) -> tuple[float | None, float | None, float | None]:
    if not lat:
        return None, None, None
    lat = sorted(lat)
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    return round(statistics.median(lat), 2), round(p99, 2), round(lat[-1], 2)


async def measure(n: int, idle_s: float, *, settle_s: float | None,
                  burst_s: float | None = None, with_dead_hooks: bool = False
                  ) -> dict[str, Any]:
    """One daemon run. ``burst_s``: the n calls' decisive events spread over that long,
    timed to the outbox commit instead of to AT+CMGS."""
    tmp = Path(tempfile.mkdtemp(prefix="textback-bench-latency-"))
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-bench", time_scale=0.0)
    await sim.start()
    t1: dict[str, float] = {}
    hook_modem(sim, t1)
    hooks, hook_runner = await dead_hooks() if with_dead_hooks else ([], None)
    config = parse_config(config_toml(port=5038, modem=sim.port, store=tmp / "textback.db",
                                      settle_s=settle_s, hooks=hooks),
                          tmp / "textback.toml", check_permissions=False)
    window = config.trunks.settle_s
    gap = burst_s / n if burst_s is not None else GAP_S + window
    events, decisive = build_stream(n, lead_s=idle_s + 4.0, gap_s=gap)
    ami = TimedAmi(events=events, speed=1.0, secret=SECRET)
    ami.decisive, ami.t0 = decisive, {}
    _, port = await ami.start("127.0.0.1", 0)
    config = parse_config(config_toml(port=port, modem=sim.port, store=tmp / "textback.db",
                                      settle_s=settle_s, hooks=hooks),
                          tmp / "textback.toml", check_permissions=False)
    enqueued: dict[str, float] = {}
    daemon = Daemon(config, modem_poll_s=1.0)
    with hook_enqueued(enqueued):
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
            idle_cpu = 100.0 * (time.process_time() - cpu0) / max(
                1e-9, time.perf_counter() - wall0)
            idle_clean = not ami.t0  # no call decided inside the idle window
            done = enqueued if burst_s is not None else t1
            deadline = time.monotonic() + 30 + n * 0.1
            while len(done) < n and time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.1)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 30)
            await ami.close()
            await sim.stop()
            if hook_runner is not None:
                await hook_runner.cleanup()
    done = enqueued if burst_s is not None else t1
    lat = [(done[c] - ami.t0[c]) * 1000.0 for c in done if c in ami.t0]
    if len(lat) < n:
        print(f"latency: only {len(lat)} of {n} calls were "
              f"{'enqueued' if burst_s is not None else 'texted'}", file=sys.stderr)
    p50, p99, worst = _percentiles(lat)
    return {"p50_ms": p50, "p99_ms": p99, "max_ms": worst, "n": len(lat), "calls": n,
            "idle_cpu_pct": round(idle_cpu, 2) if idle_s else None,
            "idle_window_clean": idle_clean, "settle_s": window}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="150 calls per run (under 30 s)")
    ap.add_argument("-n", type=int, help="calls per run (default 1000, 150 with --quick)")
    ap.add_argument("--burst", type=int, metavar="N",
                    help="also N missed calls ending within one second (default config): "
                         "decisive event -> outbox commit")
    ap.add_argument("--dead-hooks", action="store_true",
                    help="also the default-config run with a refused and a hanging webhook")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    n = args.n or (150 if args.quick else 1000)
    default = asyncio.run(measure(n, idle_s=0.0, settle_s=None))
    settle0 = asyncio.run(measure(n, idle_s=5.0, settle_s=0.0))
    figures: dict[str, Any] = {
        "default_config_p50_ms": default["p50_ms"],
        "default_config_p99_ms": default["p99_ms"],
        "default_config_max_ms": default["max_ms"],
        "default_config_n": default["n"],
        "settle_s": default["settle_s"],
        "p50_ms": settle0["p50_ms"], "p99_ms": settle0["p99_ms"],
        "max_ms": settle0["max_ms"], "n": settle0["n"], "calls": n,
        "idle_cpu_pct": settle0["idle_cpu_pct"],
        "idle_window_clean": settle0["idle_window_clean"],
        "send_delay_s": 0, "capture": CAPTURE.name,
    }
    ok = default["n"] == n and settle0["n"] == n
    if args.burst:
        burst = asyncio.run(measure(args.burst, idle_s=0.0, settle_s=None, burst_s=1.0))
        figures.update({"burst_calls": args.burst, "burst_n": burst["n"],
                        "burst_p50_ms": burst["p50_ms"], "burst_p99_ms": burst["p99_ms"],
                        "burst_max_ms": burst["max_ms"]})
        ok = ok and burst["n"] == args.burst
    if args.dead_hooks:
        dead = asyncio.run(measure(n, idle_s=0.0, settle_s=None, with_dead_hooks=True))
        figures.update({"dead_hooks_p50_ms": dead["p50_ms"], "dead_hooks_p99_ms": dead["p99_ms"],
                        "dead_hooks_n": dead["n"]})
        ok = ok and dead["n"] == n
    if not args.quick and args.n is None:
        merge_results("latency", figures)
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
