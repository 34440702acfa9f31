"""Send latency with the web app off, and on while it is being used hard.

Same measure as bench/latency.py (t0: the fake AMI server writes a missed call's decisive
``Hangup``; t1: the simulated modem reads the bytes completing ``AT+CMGS``), same real
Asterisk 22 capture renumbered per call, same daemon in this process, two runs:

* ``off``: ``[web] enabled = false``;
* ``on``: ``[web] enabled = true``, and a separate process (a browser stands for it) logged
  in with a session cookie fetches the dashboard (``/dashboard?days=all``: the report's
  per-call query over the whole store) in a loop, back to back, and keeps an SSE client
  (``/events``, the inbox's live updates) connected the whole time. When the app answers
  429 (its per-session budget, textback/web/budget.py) the loop waits the Retry-After it
  is given, as a browser would.

The web app shares the daemon's event loop. It reads through its own read-only SQLite
connection, groups the report off the loop, computes a dashboard at most every 10 s and
holds each session to 10 requests a second (bursts of 60), so the send path should not see
it: the ratio of the medians is the figure. (Without the budget and the cache, the same
loop fetched ~115 dashboards a second and the median went from 5 ms to 700 ms: a
saturated loop.)

The two runs alternate (``--rounds`` pairs, off then on) so that the load of a shared machine
drifting during the run hits both alike; figures are over all calls of each mode.

Last line: {"off": {"p50_ms", "p99_ms", "n", "round_p50_ms"}, "on": {..., "dashboards": k,
"throttled": k, "sse_connected": bool}, "p50_ratio": on/off, "p99_ratio": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.latency import TimedAmi, build_stream, config_toml, hook_modem  # noqa: E402
from textback.config import parse_config  # noqa: E402
from textback.daemon import Daemon  # noqa: E402
from textback.store import Store  # noqa: E402
from textback.testing.modem_simulator import ModemSimulator  # noqa: E402
from textback.web import auth  # noqa: E402

SECRET = "bench-latency-secret"


def _pct(lat: list[float], q: float) -> float | None:
    if not lat:
        return None
    return round(lat[min(len(lat) - 1, round(q * (len(lat) - 1)))], 2)


async def run_once(n: int, web: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="textback-bench-web-"))
    events, decisive = build_stream(n, lead_s=3.0)
    ami = TimedAmi(events=events, speed=1.0, secret=SECRET)
    ami.decisive, ami.t0 = decisive, {}
    _, port = await ami.start("127.0.0.1", 0)
    sim = ModemSimulator("generic", link=tmp / "ttyUSB-bench", time_scale=0.0)
    await sim.start()
    t1: dict[str, float] = {}
    hook_modem(sim, t1)
    text = config_toml(port=port, modem=sim.port, store=tmp / "textback.db", settle_s=None)
    config = parse_config(text, tmp / "textback.toml", check_permissions=False)
    config = dataclasses.replace(config, web=dataclasses.replace(config.web, enabled=web,
                                                                 port=0))
    daemon = Daemon(config, modem_poll_s=1.0)
    task = asyncio.create_task(daemon.run())
    client: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 20
        while not (daemon.senders.get("modem:a") and daemon.senders["modem:a"].available()
                   and ami.logins and (not web or (daemon.web and daemon.web.port))):
            if time.monotonic() > deadline or task.done():
                raise RuntimeError("daemon did not start (modem, AMI login or web app)")
            await asyncio.sleep(0.05)
        if web:
            store = await Store.open(config.store.path)
            try:
                await auth.add_user(store, "bench", "bench-password-1", time.time())
                cookie, _ = await auth.start_session(store, "bench", time.time(), 1.0)
            finally:
                await store.close()
            client = subprocess.Popen(
                [sys.executable, __file__, "--client", daemon.web.url, cookie],
                stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        deadline = time.monotonic() + 30 + n * 0.1
        while len(t1) < n and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
        cpu_pct = 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    finally:
        load: dict[str, Any] = {}
        if client is not None:
            client.terminate()
            out, _ = client.communicate(timeout=10)
            lines = [x for x in out.splitlines() if x.startswith("{")]
            load = json.loads(lines[-1]) if lines else {}
        daemon.stop()
        await asyncio.wait_for(task, 30)
        await ami.close()
        await sim.stop()
    lat = sorted((t1[c] - ami.t0[c]) * 1000.0 for c in t1 if c in ami.t0)
    return {"latencies": lat, "calls": n, "cpu_pct": cpu_pct, **{k: load.get(k, 0) for k in (
        "dashboards", "errors", "throttled", "sse_connected")}}


def summary(runs: list[dict[str, Any]], web: bool) -> dict[str, Any]:
    lat = sorted(x for r in runs for x in r["latencies"])
    out: dict[str, Any] = {
        "p50_ms": round(statistics.median(lat), 2) if lat else None,
        "p99_ms": _pct(lat, 0.99), "n": len(lat), "calls": sum(r["calls"] for r in runs),
        "round_p50_ms": [round(statistics.median(r["latencies"]), 2) if r["latencies"]
                         else None for r in runs],
        # the daemon process's CPU (daemon, fake AMI, simulated modem; the load client is
        # another process) while the calls ran: on minus off is the web app's share
        "cpu_pct": round(statistics.mean(r["cpu_pct"] for r in runs), 1)}
    if web:
        out["dashboards"] = sum(r["dashboards"] for r in runs)
        out["dashboard_errors"] = sum(r["errors"] for r in runs)
        out["throttled"] = sum(r["throttled"] for r in runs)
        out["sse_connected"] = all(r["sse_connected"] for r in runs)
    return out


async def client_main(url: str, cookie: str) -> None:
    """The load: dashboards back to back and one live-update stream, until SIGTERM."""
    import signal

    import aiohttp

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    stats = {"dashboards": 0, "throttled": 0, "errors": 0, "sse_connected": False}
    async with aiohttp.ClientSession(cookies={"tb_session": cookie}) as http:

        async def sse() -> None:
            async with http.get(url + "/events") as stream:
                stats["sse_connected"] = stream.status == 200
                async for _ in stream.content:
                    if stop.is_set():
                        break

        async def dashboards() -> None:
            while not stop.is_set():
                async with http.get(url + "/dashboard?days=all",
                                    allow_redirects=False) as page:
                    await page.read()
                    if page.status == 200:
                        stats["dashboards"] += 1
                    elif page.status == 429:  # the app's per-session budget: as told
                        stats["throttled"] += 1
                        await asyncio.sleep(float(page.headers.get("Retry-After", "1")))
                    else:
                        stats["errors"] += 1

        tasks = [asyncio.create_task(sse()), asyncio.create_task(dashboards())]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(stats), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="one round of 100 calls each way (under 30 s)")
    ap.add_argument("-n", type=int, help="calls per run (default 300, 100 with --quick)")
    ap.add_argument("--rounds", type=int,
                    help="off/on pairs, alternated so load drift hits both (default 3, 1 "
                    "with --quick)")
    ap.add_argument("--client", nargs=2, metavar=("URL", "COOKIE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        asyncio.run(client_main(*args.client))
        return 0
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    n = args.n or (100 if args.quick else 300)
    rounds = args.rounds or (1 if args.quick else 3)
    offs, ons = [], []
    for _ in range(rounds):
        offs.append(asyncio.run(run_once(n, web=False)))
        ons.append(asyncio.run(run_once(n, web=True)))
    off, on = summary(offs, False), summary(ons, True)

    def ratio(key: str) -> float | None:
        a, b = off.get(key), on.get(key)
        return round(b / a, 2) if a and b else None

    figures = {"off": off, "on": on, "p50_ratio": ratio("p50_ms"),
               "p99_ratio": ratio("p99_ms"), "load_avg_1m": round(os.getloadavg()[0], 2),
               "cores": os.cpu_count()}
    if not args.quick and args.n is None:
        from bench._results import merge_results

        merge_results("web_load", figures)
    print(json.dumps(figures))
    return 0 if off["n"] == off["calls"] and on["n"] == on["calls"] and \
        on.get("sse_connected") else 1


if __name__ == "__main__":
    sys.exit(main())
