"""Time to text: textback against smstools3 and gammu-smsd, each ending at the first byte of
AT+CMGS on a simulated modem pty.

The same decisive AMI event stream (bench/_harness.py: the real Asterisk 22 capture
direct-noanswer.ami.ts, one new caller per call) drives every path. The clock starts when
the bench writes the decisive event (the call's last Hangup) and stops when the chunk
holding the first byte of the next ``AT+CMGS`` is read off the simulated modem's pty.

(a) textback: the real daemon (``textback run``, a subprocess) connected to a loopback AMI
    server the bench pushes events through, twice: with the shipped defaults except
    ``send_delay_s = 0`` ("textback": its settle window included, what users get) and
    with ``settle_s = 0`` too ("textback_settle0": the path alone).
(b) smstools3 (``smsd -t``, its own config and spool dirs in a temporary directory, the
    simulator's pty as its device): the bench replays the same bytes through textback's own
    ``AsteriskStream`` with settle 0 (the spool daemons get the call decided at the
    Hangup itself: no settle window; textback's default run waits its window, so the
    comparison favours them) and, the moment it says "missed", writes the message
    file atomically (write in a temp dir, rename) into smsd's outgoing spool.
(c) gammu-smsd (files backend, ``connection = at``, the pty as device), fed the same way
    with ``gammu-smsd-inject``.
(b) and (c) run twice: their default configuration and their fastest complete tuning
(``SMSD_TUNED``, ``GAMMU_TUNED``: every documented knob that removes a poll or a modem
command before AT+CMGS). The default
runs (each call takes seconds of polling) run side by side on separate simulated modems, in
a child process, while textback and then smstools3 tuned run here; gammu-smsd tuned (a busy
loop) runs last, alone (see ``main``). Idle CPU (CPU seconds per second of the
whole process tree, left idle for a few seconds) is measured for textback and the tuned
daemons. Between calls the bench waits a random gap so arrivals fall at random phases
of the daemons' polling loops.

``BENCH_DEBUG=1`` logs every step with its time (daemon log lines, bytes the modem heard);
``BENCH_KEEP=1`` keeps the spool daemons' temporary directories (configs, logs, spools).

The simulated modem is the generic profile at time_scale 0.1 (the demo's pace: 10 ms per
command, 0.25 s per submitted part). ``--quick`` runs fewer calls (under 120 s); the last
line is one JSON object. A full run merges its figures into bench/results.json under
"compare".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import (  # noqa: E402
    SECRET,
    TEXT,
    ControlledAmi,
    Latencies,
    StampingSimulator,
    idle_cpu,
    make_call,
)
from textback.pbx.asterisk.stream import AsteriskStream  # noqa: E402
from textback.pbx.stream import TrackerConfig  # noqa: E402
from textback.testing.lab_config import lab_config_toml  # noqa: E402

TIME_SCALE = 0.1
CALL_TIMEOUT_S = 20.0

def textback_config(*, ami_port: int, modem_port: str | Path, store: Path,
                    settle_s: float | None = None) -> str:
    """textback's side: the lab office (textback.testing.lab_config: shipped defaults,
    send_delay_s 0) with caps out of the way and the bench's text as the template;
    ``settle_s`` None keeps the shipped settle window (what users run)."""
    did = {"number": "+15559870000", "business": "Acme Plumbing",
           "booking_url": "https://acme.example/book", "senders": ["modem:a"],
           "templates": {"business_hours": TEXT}}
    trunks = {} if settle_s is None else {"settle_s": settle_s}
    return lab_config_toml(ami_port=ami_port, modem_port=modem_port, store=store,
                           pbx={"secret": SECRET}, trunks=trunks,
                           policy={"prefix_hour_cap": 1000000, "global_hour_cap": 1000000},
                           did=[did], hours={"timezone": "UTC"})


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


# ------------------------------------------------------------------ (a) textback

async def run_textback(calls: int, gap: tuple[float, float], idle_s: float,
                       settle_s: float | None = None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-textback-"))
    ami = ControlledAmi()
    _, port = await ami.start("127.0.0.1", 0)
    sim = StampingSimulator("generic", link=tmp / "ttyUSB-bench", time_scale=TIME_SCALE,
                            auto_reports=False)
    await sim.start()
    config = tmp / "textback.toml"
    write_private(config, textback_config(ami_port=port, modem_port=sim.port,
                                          store=tmp / "textback.db", settle_s=settle_s))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "textback", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    ready = asyncio.Event()
    logs: list[str] = []

    async def pump() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            logs.append(text)
            if os.environ.get("BENCH_DEBUG"):
                log(f"{time.monotonic():.3f} {text}")
            if "event=modem_state" in text and "modem=a state=ready" in text:
                ready.set()

    pumper = asyncio.create_task(pump())
    result = Latencies("textback")
    cpu = float("nan")
    try:
        await asyncio.wait_for(asyncio.gather(ami.logged_in.wait(), ready.wait()), 30)
        await asyncio.sleep(0.5)
        for i in range(calls):
            await asyncio.sleep(random.uniform(*gap))
            call = make_call(i)
            ami.play(call.pre)
            await asyncio.sleep(0.02)
            t0 = time.monotonic()
            ami.play(call.decisive)
            if os.environ.get("BENCH_DEBUG"):
                log(f"{t0:.3f} decisive")
            at = await sim.wait_cmgs(i + 1, CALL_TIMEOUT_S)
            ami.play(call.post)
            if at is None or not await sim.wait_accepted(i + 1, CALL_TIMEOUT_S):
                result.failures.append(
                    f"call {i}: no AT+CMGS within {CALL_TIMEOUT_S} s; daemon log: "
                    + " | ".join(x for x in logs if call.caller in x or "skipped" in x
                                 or "WARN" in x
                                 or "ERROR" in x)[-1500:])
                break
            got = sim.accepted[i].decoded.number
            if got != call.caller:
                result.failures.append(f"call {i}: texted {got}, expected {call.caller}")
                break
            result.ms.append((at - t0) * 1000)
            await sim.wait_idle()
        await asyncio.sleep(1.0)
        cpu = await idle_cpu(proc.pid, idle_s)
    except TimeoutError:
        result.failures.append("daemon not ready in 30 s: " + " | ".join(logs[-5:]))
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        pumper.cancel()
        await ami.close()
        await sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out: dict[str, Any] = result.summary()
    out["idle_cpu_s_per_s"] = round(cpu, 5)
    if result.failures:
        out["errors"] = result.failures[:3]
    return out


# ------------------------------------------------------------------ (b), (c) spool daemons

SMSD_CONF = """\
devices = GSM1
outgoing = {d}/outgoing
checked = {d}/checked
failed = {d}/failed
incoming = {d}/incoming
sent = {d}/sent
logfile = {d}/smsd.log
loglevel = 5
infofile = {d}/smsd.working
pidfile = {d}/smsd.pid
{extra}
[GSM1]
device = {port}
incoming = no
baudrate = 115200
{modem_extra}"""
# smstools3's documented knobs for speed (configure.html): notifier (inotifywait wakes the
# main process on a new outgoing file), trust_outgoing (skip the file checks),
# detect_unexpected_input = no (no read before each command), and the shortest polls:
# delaytime / delaytime_mainprocess 1 s (integers), sleeptime_mainprocess 1 (its minimum);
# and the modem chatter before each send (its complete tuning, issue 13: 125 -> 43.5 ms
# p50 measured outside the repo): pre_init = no (no "echo off"/CMEE=1 first),
# check_network = 0 (no AT+CREG? before sending), status_signal_quality = no (no AT+CSQ
# for the status line; a modem setting that overrides the global one).
SMSD_TUNED = ("notifier = yes\ntrust_outgoing = yes\ndelaytime = 1\n"
              "delaytime_mainprocess = 1\nsleeptime_mainprocess = 1\n",
              "detect_unexpected_input = no\npre_init = no\ncheck_network = 0\n"
              "status_signal_quality = no\n")

GAMMU_CONF = """\
[gammu]
device = {port}
connection = at

[smsd]
service = files
inboxpath = {d}/inbox/
outboxpath = {d}/outbox/
sentsmspath = {d}/sent/
errorsmspath = {d}/error/
logfile = {d}/gammu-smsd.log
debuglevel = {debuglevel}
{extra}"""
# gammu-smsd's loop: LoopSleep (seconds between loops, default 1) and CommTimeout (seconds
# between outbox scans, default 30); both 0 is its fastest, a busy loop. Its complete
# tuning also stops the modem chatter of each loop (gammu-smsdrc(5)): StatusFrequency = 0
# (no battery/signal refresh), CheckSecurity = 0 (no AT+CPIN?), CheckBattery = 0,
# CheckSignal = 0, CheckNetwork = 0 (no AT+CBC / AT+CSQ / AT+CREG? between texts).
GAMMU_TUNED = ("CommTimeout = 0\nLoopSleep = 0\nStatusFrequency = 0\nCheckSecurity = 0\n"
               "CheckBattery = 0\nCheckSignal = 0\nCheckNetwork = 0\n")


class SpoolDaemon:
    """One spool daemon on its own simulated modem, fed the way its users feed it."""

    def __init__(self, kind: str, tuned: bool) -> None:
        self.kind, self.tuned = kind, tuned
        self.name = f"{kind}_{'tuned' if tuned else 'default'}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-compare-{self.name}-"))
        self.sim = StampingSimulator("generic", link=self.dir / "ttyUSB-bench",
                                     time_scale=TIME_SCALE, auto_reports=False)
        self.proc: asyncio.subprocess.Process | None = None
        self.config = self.dir / "daemon.conf"
        self.seq = 0

    async def start(self) -> None:
        await self.sim.start()
        d = self.dir
        if self.kind == "smstools3":
            for sub in ("outgoing", "checked", "failed", "incoming", "sent", "staging"):
                (d / sub).mkdir()
            extra, modem_extra = SMSD_TUNED if self.tuned else ("", "")
            self.config.write_text(SMSD_CONF.format(d=d, port=self.sim.port, extra=extra,
                                                    modem_extra=modem_extra))
            cmd = ["smsd", "-t", f"-c{self.config}", "-uroot", "-groot"]
        else:
            for sub in ("inbox", "outbox", "sent", "error"):
                (d / sub).mkdir()
            self.config.write_text(GAMMU_CONF.format(
                d=d, port=self.sim.port, extra=GAMMU_TUNED if self.tuned else "",
                debuglevel=os.environ.get("BENCH_GAMMU_DEBUG", "1")))
            cmd = ["gammu-smsd", "-c", str(self.config)]
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, cwd=d, start_new_session=True)

    async def enqueue(self, number: str, text: str) -> None:
        """Hand one text over: smstools3 by an atomic rename into its outgoing spool,
        gammu-smsd by gammu-smsd-inject (its documented way)."""
        self.seq += 1
        if self.kind == "smstools3":
            staged = self.dir / "staging" / f"call{self.seq}"
            staged.write_text(f"To: {number.lstrip('+')}\n\n{text}\n")
            os.rename(staged, self.dir / "outgoing" / f"call{self.seq}")
        else:
            inject = await asyncio.create_subprocess_exec(
                "gammu-smsd-inject", "-c", str(self.config), "TEXT", number, "-text", text,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await inject.communicate()
            if inject.returncode != 0:
                raise RuntimeError(f"gammu-smsd-inject exit {inject.returncode}: "
                                   f"{err.decode(errors='replace').strip()[-200:]}")

    def failed_files(self) -> list[Path]:
        """Messages the daemon itself gave up on (its failed / error spool)."""
        return sorted((self.dir / ("failed" if self.kind == "smstools3" else "error")).iterdir())

    async def wait_sent(self, count: int, failed: int,
                        timeout: float) -> tuple[float | None, str]:
        """(stamp of the ``count``-th AT+CMGS, "") or (None, why the daemon gave up): it
        gave up when its failed spool holds more than ``failed`` files."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = await self.sim.wait_cmgs(count, 0.1)
            if at is not None:
                return at, ""
            now_failed = self.failed_files()
            if len(now_failed) > failed:
                return None, (f"the daemon moved the message to its failed spool "
                              f"({now_failed[-1].name}): " + self.why_not(6, 0))
        return None, ""

    def why_not(self, lines: int = 6, heard: int = 300) -> str:
        """What the daemon said and what the modem heard last: for an honest failure."""
        logs = sorted(self.dir.glob("*.log"))
        tail = logs[0].read_text(errors="replace").splitlines()[-lines:] if logs else []
        said = bytes(self.sim.heard[-heard:]).decode("latin-1") if heard else ""
        return (f"exit={self.proc.returncode if self.proc else None}; log tail: "
                f"{' | '.join(tail)}" + (f"; modem heard (last {heard} bytes): {said!r}"
                                         if heard else ""))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        await self.sim.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


async def run_spool(kind: str, tuned: bool, calls: int, gap: tuple[float, float],
                    idle_s: float, keep_ms: bool = False) -> dict[str, Any]:
    daemon = SpoolDaemon(kind, tuned)
    # a default configuration polls every 10 s (smstools3) or 30 s (gammu-smsd)
    timeout = CALL_TIMEOUT_S if tuned else 75.0
    result = Latencies(daemon.name)
    cpu = float("nan")
    stream = AsteriskStream(TrackerConfig(trunk_contexts=("from-trunk",), settle_s=0.0,
                                          default_region="US"))
    try:
        await daemon.start()
        # warm-up text (not counted): the daemon has opened and initialised the modem
        await daemon.enqueue("+15552999999", TEXT)
        if await daemon.sim.wait_cmgs(1, 120) is None:
            result.failures.append("warm-up text never reached AT+CMGS: " + daemon.why_not())
            raise LookupError
        await daemon.sim.wait_accepted(1, 60)
        await daemon.sim.wait_idle()
        base = 1
        for i in range(calls):
            await asyncio.sleep(random.uniform(*gap))
            call = make_call(i)
            stream.feed(call.pre, time.monotonic())
            await asyncio.sleep(0.02)
            failed = len(daemon.failed_files())
            t0 = time.monotonic()
            for outcome in stream.feed(call.decisive, t0):
                if outcome.verdict == "missed" and outcome.caller:
                    await daemon.enqueue(outcome.caller, TEXT)
            if os.environ.get("BENCH_DEBUG"):
                log(f"{t0:.3f} decisive {daemon.name}")
            at, error = await daemon.wait_sent(base + 1, failed, timeout)
            stream.feed(call.post, time.monotonic())
            if error:
                result.failures.append(f"call {i}: {error}")
                log(f"  {daemon.name} call {i}: {error}")
                continue
            if at is None or not await daemon.sim.wait_accepted(base + 1, timeout):
                result.failures.append(f"call {i}: no AT+CMGS within {timeout} s: "
                                       + daemon.why_not())
                break
            got = daemon.sim.accepted[base].decoded.number
            base += 1
            if got != call.caller:
                result.failures.append(f"call {i}: texted {got}, expected {call.caller}")
                break
            result.ms.append((at - t0) * 1000)
            if os.environ.get("BENCH_DEBUG"):
                log(f"  {daemon.name} call {i}: {result.ms[-1]:.1f} ms")
            await daemon.sim.wait_idle()
        if tuned and daemon.proc is not None:
            await asyncio.sleep(1.0)
            cpu = await idle_cpu(daemon.proc.pid, idle_s)
    except LookupError:
        pass
    finally:
        await daemon.stop()
    out: dict[str, Any] = result.summary()
    if tuned:
        out["idle_cpu_s_per_s"] = round(cpu, 5)
    if result.failures:
        out["errors"] = result.failures[:3]
    if keep_ms:
        out["_ms"] = result.ms
    return out


def merge_instances(parts: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Several default-config instances measured side by side: pool their latencies."""
    ms: list[float] = [x for p in parts for x in p.pop("_ms", [])]
    res = Latencies(name, ms)
    out: dict[str, Any] = res.summary()
    out["instances"] = len(parts)
    out["failed"] = sum(int(p.get("failed", 0)) for p in parts)
    errors = [e for p in parts for e in p.get("errors", [])]
    if errors:
        out["errors"] = errors[:3]
    return out


DEFAULT_SPLIT = {False: ((6, 5), (10, 3)), True: ((2, 2), (2, 1))}
"""quick -> ((smstools3 instances, calls each), (gammu-smsd instances, calls each))."""


async def run_defaults(quick: bool) -> dict[str, Any]:
    """Both daemons in their default configuration: 30 calls each (full run).

    Default configs poll every 10 s (smstools3 delaytime) and 30 s (gammu-smsd
    CommTimeout): a random gap up to one period puts each call at a random phase. Each
    call takes seconds of waiting, so several idle instances, each on its own simulated
    modem, run side by side and their calls are pooled."""
    (smsd_inst, smsd_calls), (gammu_inst, gammu_calls) = DEFAULT_SPLIT[quick]
    defaults = await asyncio.gather(
        *[run_spool("smstools3", False, smsd_calls, (0.0, 10.0), 0, keep_ms=True)
          for _ in range(smsd_inst)],
        *[run_spool("gammu_smsd", False, gammu_calls, (0.0, 30.0), 0, keep_ms=True)
          for _ in range(gammu_inst)])
    return {
        "smstools3_default": merge_instances(list(defaults[:smsd_inst]), "smstools3_default"),
        "gammu_smsd_default": merge_instances(list(defaults[smsd_inst:]), "gammu_smsd_default"),
    }


async def defaults_in_child(quick: bool) -> dict[str, Any]:
    """run_defaults in a child process (``--defaults-only``), with its own event loop.

    The default runs are seconds of idle polling per call; in a child they overlap the
    millisecond runs without sharing the event loop that stamps those runs' AT+CMGS."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--defaults-only",
        *(["--quick"] if quick else []), stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"compare --defaults-only exited {proc.returncode}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


async def main(quick: bool) -> dict[str, Any]:
    """The five paths. Timeline (full run, about 7 minutes): the default configurations
    run in a child process from the start; meanwhile textback, then smstools3 tuned, run
    in this process. gammu-smsd tuned (a busy loop that takes a core) runs last, alone.
    textback and smstools3 tuned therefore share the machine with the idle default
    daemons, which can only make their figures worse, never better."""
    n_fast = 20 if quick else 200
    idle_s = 5.0 if quick else 8.0
    started = time.monotonic()
    log("compare: default configurations (child process, side by side, seconds per call)")
    defaults_task = asyncio.create_task(defaults_in_child(quick))
    figures: dict[str, Any] = {}
    log(f"compare: textback (shipped defaults, send_delay_s 0), {n_fast} calls")
    figures["textback"] = await run_textback(n_fast, (0.05, 0.3), idle_s)
    log(f"compare: textback settle 0, {n_fast} calls")
    figures["textback_settle0"] = await run_textback(n_fast, (0.05, 0.3), 0.0, settle_s=0.0)
    log(f"compare: smstools3 tuned, {n_fast} calls")
    figures["smstools3_tuned"] = await run_spool("smstools3", True, n_fast, (0.05, 0.3), idle_s)
    log("compare: waiting for the default configurations")
    figures.update(await defaults_task)
    log(f"compare: gammu-smsd tuned, {n_fast} calls (alone: it busy-loops)")
    figures["gammu_smsd_tuned"] = await run_spool("gammu_smsd", True, n_fast, (0.05, 0.3),
                                                  idle_s)
    figures = {k: figures[k] for k in ("textback", "textback_settle0", "smstools3_default",
                                       "gammu_smsd_default", "smstools3_tuned",
                                       "gammu_smsd_tuned")}
    tb = figures["textback"]
    out: dict[str, Any] = {"quick": quick, "time_scale": TIME_SCALE,
                           "seconds": round(time.monotonic() - started, 1)}
    for name, f in figures.items():
        out[f"{name}_p50_ms"] = f["p50_ms"]
        out[f"{name}_p99_ms"] = f["p99_ms"]
        out[f"{name}_n"] = f["n"]
        if f.get("failed"):
            out[f"{name}_failed"] = f["failed"]
        if not name.startswith("textback"):
            for q in ("p50", "p99"):
                out[f"{name}_{q}_x_textback"] = round(f[f"{q}_ms"] / tb[f"{q}_ms"], 1)
        if "idle_cpu_s_per_s" in f:
            out[f"{name}_idle_cpu"] = f["idle_cpu_s_per_s"]
    out["details"] = figures
    return out


def cli() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls, under 120 s")
    ap.add_argument("--defaults-only", action="store_true",
                    help="only the default-configuration runs (main runs them in a child)")
    args = ap.parse_args()
    missing = [b for b in ("smsd", "gammu-smsd", "gammu-smsd-inject", "inotifywait")
               if shutil.which(b) is None]
    if missing:
        print(f"compare: {', '.join(missing)} not installed: run bench/install-deps.sh",
              file=sys.stderr)
        return 2
    if args.defaults_only:
        print(json.dumps(asyncio.run(run_defaults(args.quick))))
        return 0
    out = asyncio.run(main(args.quick))
    details = out.pop("details")
    print(f"{'path':<20} {'n':>4} {'p50 ms':>10} {'p99 ms':>10} {'p99 x textback':>15} "
          f"{'idle CPU':>9} failed")
    for name, f in details.items():
        ratio = out.get(f"{name}_p99_x_textback", 1.0)
        cpu = f.get("idle_cpu_s_per_s", "")
        print(f"{name:<20} {f['n']:>4} {f['p50_ms']:>10} {f['p99_ms']:>10} {ratio:>15} "
              f"{cpu!s:>9} {f.get('failed', 0)}")
        for e in f.get("errors", []):
            print(f"    {name}: {e[:400]}")
    if not args.quick:
        from bench._results import merge_results

        merge_results("compare", dict(out, details=details))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
