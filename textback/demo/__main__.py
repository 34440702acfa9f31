"""``python -m textback.demo`` (``make demo``): the whole job, end to end, in under a minute.

1. A replaying AMI server on loopback serves a real Asterisk 22 capture
   (../shared/traces/asterisk-22/concurrent-mixed.ami.ts: three overlapping calls) at its
   recorded pace.
2. A simulated GSM modem (the same emulator the tests use) waits on a pty.
3. ``textback run`` — the real daemon, as its own process — gets a demo config in a
   temporary directory, listens, decides, and texts each genuinely missed caller.
4. The demo prints the verdicts, the texts the modem received over AT+CMGS (decoded from
   the PDUs), and what the store holds; then stops the daemon with SIGTERM.
It exits 0 only when every missed call was texted exactly once and no other call was.

With ``--serve`` (``textback demo --serve``, ``make demo SERVE=1``) the daemon also runs the
office's web app on 127.0.0.1:8025 and stays up after step 4: the simulated network
delivers a reply from one texted caller and a STOP from the other, the demo prints one line
``web: http://127.0.0.1:8025/login?token=...`` (a one-time login link for a ``demo`` user) and
waits for Ctrl-C, then stops the daemon as above.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from textback.testing.fake_ami import FakeAmi
from textback.testing.lab_config import LAB_TEMPLATE, write_lab_config
from textback.testing.modem_simulator import ModemSimulator

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CAPTURE = REPO.parent / "shared" / "traces" / "asterisk-22" / "concurrent-mixed.ami.ts"
SECRET = "demo-only-secret"
WEB_LISTEN = "127.0.0.1:8025"
DEMO_REPLY = "Yes please - can someone come round tomorrow morning? The sink is leaking"
INTERESTING = ("call_decided", "text_queued", "text_skipped", "text_sending", "text_sent",
               "text_failed", "started", "stopped", "fatal", "store_unavailable")


def say(text: str = "") -> None:
    print(text, flush=True)


def write_config(tmp: Path, ami_port: int, modem_port: str, web: bool = False,
                 listen: str = WEB_LISTEN) -> Path:
    """The lab office (textback.testing.lab_config) on the replayed capture, with the three
    DIDs its calls dial; mode 600, as check-config wants a file that holds a secret."""
    dids = [{"number": "+15559870000", "business": "Acme Plumbing",
             "booking_url": "https://acme.example/book", "senders": ["modem:a"],
             "templates": {"business_hours": LAB_TEMPLATE}},
            {"number": "+15559870002", "business": "Acme Heating", "senders": ["modem:a"]},
            {"number": "+15559870003", "business": "Acme Electric", "senders": ["modem:a"]}]
    return write_lab_config(tmp / "textback.toml", ami_port=ami_port, modem_port=modem_port,
                            store=tmp / "textback.db", pbx={"secret": SECRET},
                            trunks={"settle_s": 1.0}, did=dids,
                            web={"enabled": True, "listen": listen} if web else None)


# log fields that hold a moment (epoch seconds): shown as a time of day
_TIME_FIELD = re.compile(r"\b(not_before|created_at|started_at|until|at|due_at)="
                         r"(\d{9,11}(?:\.\d+)?)(?=\s|$)")
_PLUMBING = re.compile(r" (?:level=(?:info|debug|warning)|logger=\S+)(?=\s|$)")


def demo_line(text: str) -> str | None:
    """A daemon log line as the demo shows it, or None for lines it leaves out: the events
    of a call's story and every error, with times instead of epoch seconds and without
    the logger's name (call ids stay as the PBX wrote them)."""
    event = text.split(" ", 1)[0].removeprefix("event=")
    if event not in INTERESTING and " level=error" not in text \
            and " level=critical" not in text:
        return None

    def clock(m: re.Match[str]) -> str:
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(float(m.group(2))))
        return f"{m.group(1)}={moment}"

    return _TIME_FIELD.sub(clock, _PLUMBING.sub("", text))


async def pump_logs(stream: asyncio.StreamReader, keep: list[str]) -> None:
    while line := await stream.readline():
        text = line.decode("utf-8", "replace").rstrip()
        keep.append(text)
        shown = demo_line(text)
        if shown is not None:
            say(f"  daemon | {shown}")


def texts_received(sim: ModemSimulator) -> list[dict[str, Any]]:
    """Join the PDUs the simulated network accepted back into whole texts."""
    whole: dict[tuple[str | None, Any], dict[str, Any]] = {}
    for acc in sim.accepted:
        d = acc.decoded
        ref = d.udh.concat_ref if d.udh else f"single-{acc.mr}"
        entry = whole.setdefault((d.number, ref), {"to": d.number, "parts": [], "mr": []})
        entry["parts"].append((d.udh.part if d.udh else 1, d.text or ""))
        entry["mr"].append(acc.mr)
        entry["encoding"] = d.encoding
    out = []
    for entry in whole.values():
        entry["text"] = "".join(t for _, t in sorted(entry["parts"]))
        entry["parts"] = len(entry["parts"])
        out.append(entry)
    return out


def calls_in_capture(capture: Path) -> int:
    """How many calls the capture holds (our own replay of it), so the demo knows when the
    daemon has decided them all."""
    from textback.pbx.asterisk.timed_capture import load_ts_capture
    from textback.pbx.streams import make_stream

    stream = make_stream("asterisk")
    decided = sum(len(stream.feed(m.raw, m.at)) for m in load_ts_capture(capture))
    return decided + len(stream.finish())


async def wait_settled(db: Path, deadline: float, expected: int) -> None:
    """Until the store has every call decided and nothing queued or sending."""
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if not db.exists():
            continue
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            try:
                busy = con.execute("SELECT count(*) FROM outbox WHERE state IN "
                                   "('queued', 'sending')").fetchone()[0]
                calls = con.execute("SELECT count(*) FROM calls").fetchone()[0]
            except sqlite3.Error:
                continue
        if calls >= expected and not busy:
            return


def show_store(db: Path) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        con.row_factory = sqlite3.Row
        calls = [dict(r) for r in con.execute(
            "SELECT call_id, direction, caller, did, verdict, reason, ring_s, decision, "
            "skip_reason FROM calls ORDER BY id")]
        outbox = [dict(r) for r in con.execute(
            "SELECT id, call_id, number, state, sent_by, body FROM outbox ORDER BY id")]
        messages = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        parts = con.execute("SELECT count(*) FROM message_parts").fetchone()[0]
    say("\nThe store (SQLite, WAL):")
    say(f"  {'call':<16} {'direction':<9} {'caller':<13} {'did':<13} {'verdict':<9} "
        f"{'reason':<9} {'decision'}")
    for c in calls:
        say(f"  {c['call_id']:<16} {c['direction']:<9} {c['caller'] or '-':<13} "
            f"{c['did'] or '-':<13} {c['verdict']:<9} {c['reason']:<9} "
            f"{c['decision'] or '-'}{' (' + c['skip_reason'] + ')' if c['skip_reason'] else ''}")
    say("  outbox: " + "; ".join(f"#{o['id']} call {o['call_id']} -> {o['number']} "
                                  f"{o['state']} via {o['sent_by']}" for o in outbox))
    say(f"  messages: {messages}, message parts with TP-MR: {parts}")
    return calls


def _count(db: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        try:
            return int(con.execute(sql).fetchone()[0])
        except sqlite3.Error:
            return 0


async def serve(db: Path, sim: ModemSimulator, texted: list[str], logs: list[str],
                proc: asyncio.subprocess.Process) -> None:
    """Keep the daemon and its web app up: a reply and a STOP arrive from the texted
    callers, one login link is printed, and Ctrl-C ends it."""
    from textback.store import Store
    from textback.web import auth

    deadline = time.monotonic() + 30
    while not (listening := [line for line in logs if "event=web_listening" in line]):
        if time.monotonic() > deadline or proc.returncode is not None:
            raise RuntimeError("the web app did not start (see the daemon's log above)")
        await asyncio.sleep(0.2)
    fields = dict(f.split("=", 1) for f in listening[0].split() if "=" in f)
    address = f"{fields.get('host', '127.0.0.1')}:{fields.get('port', '8025')}"
    before = _count(db, "SELECT count(*) FROM messages WHERE direction = 'in'")
    sim.inject_sms(texted[-1], DEMO_REPLY)
    if len(texted) > 1:
        sim.inject_sms(texted[0], "STOP")
    while _count(db, "SELECT count(*) FROM messages WHERE direction = 'in'") < \
            before + min(2, len(texted)):
        if time.monotonic() > deadline + 30:
            break
        await asyncio.sleep(0.2)
    store = await Store.open(db)
    try:
        if not any(name == "demo" for name, _ in await auth.list_users(store)):
            await auth.add_user(store, "demo", secrets_token(), time.time())
        token = await auth.login_link(store, "demo", time.time())
    finally:
        await store.close()
    say(f"\nweb: http://{address}/login?token={token}")
    say("  (a one-time login link; Ctrl-C stops the daemon and the web app)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        await asyncio.wait([asyncio.create_task(stop.wait()),
                            asyncio.create_task(proc.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def secrets_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)  # the demo user logs in by the link only


async def main(capture: Path, speed: float, modem_profile: str, web: bool = False,
               listen: str = WEB_LISTEN) -> int:
    if not capture.exists():
        say(f"demo: capture {capture} not found: the demo needs ../shared beside the repo")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="textback-demo-"))
    ami = FakeAmi.from_capture(capture, speed=speed, secret=SECRET)
    _, ami_port = await ami.start("127.0.0.1", 0)
    sim = ModemSimulator(modem_profile, link=tmp / "ttyUSB-textback-demo", time_scale=0.1)
    await sim.start()
    config = write_config(tmp, ami_port, sim.port, web=web, listen=listen)
    say(f"textback demo: replaying {capture.name} (a real Asterisk 22 capture) on "
        f"127.0.0.1:{ami_port}")
    say(f"  simulated {modem_profile} modem on {sim.port}; config and store in {tmp}")
    say("  starting the daemon: textback run --config " + str(config) + "\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "textback", "run", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        start_new_session=web)  # --serve: Ctrl-C is the demo's to handle, not the daemon's
    logs: list[str] = []
    assert proc.stderr is not None
    log_task = asyncio.create_task(pump_logs(proc.stderr, logs))
    started = time.monotonic()
    status = 0
    first_texts: list[dict[str, Any]] | None = None
    try:
        done = asyncio.create_task(ami.finished.wait())
        exited = asyncio.create_task(proc.wait())
        await asyncio.wait([done, exited], timeout=45, return_when=asyncio.FIRST_COMPLETED)
        if proc.returncode is not None:
            say(f"\ndemo: the daemon exited early with status {proc.returncode}")
            return 1
        await wait_settled(tmp / "textback.db", started + 55, calls_in_capture(capture))
        if web:
            first_texts = texts_received(sim)  # before the reply, the STOP and its answer
            texted = [t["to"] for t in first_texts]
            if texted:
                await serve(tmp / "textback.db", sim, texted, logs, proc)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(log_task, 2)
        await ami.close()
        received = texts_received(sim)
        await sim.stop()
    say(f"\nThe daemon stopped on SIGTERM (exit status {proc.returncode}) after "
        f"{time.monotonic() - started:.1f} s.")
    say("\nTexts the simulated modem received (AT+CMGS, PDUs decoded):")
    for t in received:
        say(f"  to {t['to']}: {t['parts']} part(s) {t['encoding']}, TP-MR "
            f"{','.join(map(str, t['mr']))}: {json.dumps(t['text'], ensure_ascii=False)}")
    if not received:
        say("  (none)")
    calls = show_store(tmp / "textback.db")
    missed = {c["caller"] for c in calls if c["verdict"] == "missed"}
    texted = [t["to"] for t in (first_texts if first_texts is not None else received)]
    if sorted(texted) != sorted(missed) or proc.returncode not in (0, -signal.SIGTERM):
        say(f"\ndemo: FAILED: missed callers {sorted(missed)}, texted {sorted(texted)}")
        status = 1
    else:
        say(f"\ndemo: OK: {len(missed)} missed callers texted once each; "
            f"{len(calls) - len(missed)} other call(s) not texted.")
    return status


def cli() -> int:
    ap = argparse.ArgumentParser(prog="python -m textback.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE,
                    help="an Asterisk .ami.ts capture (default: concurrent-mixed)")
    ap.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = real time)")
    ap.add_argument("--modem", default="sim800l", help="simulated modem profile")
    ap.add_argument("--serve", action="store_true",
                    help=f"keep the daemon up with the web app on {WEB_LISTEN} (Ctrl-C stops)")
    ap.add_argument("--listen", default=WEB_LISTEN, help=argparse.SUPPRESS)  # tests: port 0
    args = ap.parse_args()
    return asyncio.run(main(args.capture, args.speed, args.modem, web=args.serve,
                            listen=args.listen))


if __name__ == "__main__":
    sys.exit(cli())
