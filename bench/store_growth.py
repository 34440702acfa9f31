"""Store growth: a year of a busy office in the store, its size, and how long the CLI takes
to read it (``textback status --json``, ``textback report --format json``).

Every row goes in through the real APIs, none by bulk SQL: ``Store.record_outcome`` for
each call, ``Store.record_skip`` for a missed call not texted, ``Outbox.enqueue`` /
``claim_next`` / ``mark_sent`` / ``part_report`` for each text and its delivery report,
and ``InboundHandler.receive`` for each reply (stored, classified, forwarded to staff).

The year (seeded, so every run writes the same rows): 100 000 calls spread over 365 days
of 08:00-18:00 office hours from a pool of 30 000 customer numbers; 90 % inbound, 10 %
outbound; of the inbound, 25 % missed (noanswer, busy, abandon, voicemail); 80 % of the
missed texted (the rest skipped: withheld, cooldown, opted out), 95 % of the texts
delivered, 15 % of the texts replied to (2 % of those replies STOP).

``--quick`` writes 5 000 calls (same shares) and says so. The last line is one JSON
object; a full run merges it into bench/results.json under "store_growth".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import TEXT  # noqa: E402
from bench.compare import textback_config  # noqa: E402
from textback.config import load_config  # noqa: E402
from textback.inbound.handler import InboundHandler  # noqa: E402
from textback.outbound import call_record  # noqa: E402
from textback.outbound.outbox import Outbox  # noqa: E402
from textback.pbx.outcome import CallOutcome  # noqa: E402
from textback.store import Store  # noqa: E402

YEAR_START = 1767254400.0  # 2026-01-01T08:00:00Z
DID = "+15559870000"
REPLIES = ("Can you come Tuesday morning?", "Yes please call me back", "What time tomorrow?",
           "Thanks, it is the boiler again", "Booked online, thanks")


def customer(k: int) -> str:
    return f"+1555{k % 1000:03d}{1000 + k // 1000:04d}"


async def fill(db: Path, config_path: Path, calls: int) -> dict[str, int]:
    rng = random.Random(8)
    config = load_config(config_path)
    store = await Store.open(db)
    outbox = Outbox(store, config=config)
    counts = {"calls": 0, "missed": 0, "texted": 0, "skipped": 0, "delivered": 0,
              "replies": 0, "other_texts": 0}
    clock = [YEAR_START]
    inbound = InboundHandler(store, outbox, config, clock=lambda: clock[0])
    try:
        for i in range(calls):
            day = i * 365 // calls
            t = YEAR_START + day * 86400 + rng.uniform(0, 10 * 3600)
            clock[0] = t
            number = customer(rng.randrange(30_000))
            direction = "inbound" if rng.random() < 0.9 else "outbound"
            missed = direction == "inbound" and rng.random() < 0.25
            reason = rng.choice(("noanswer", "busy", "abandon", "voicemail")) if missed \
                else "answered"
            ring = rng.uniform(5, 40)
            outcome = CallOutcome(
                call=f"{int(t)}.{i}", direction=direction,  # type: ignore[arg-type]
                caller=number if direction == "inbound" else "+15559870000",
                withheld=False, did=DID if direction == "inbound" else None,
                verdict="missed" if missed else "answered", reason=reason,
                voicemail_left=reason == "voicemail", ring_s=ring, started_at=t,
                ended_at=t + ring, connected=not missed,
                callee="101" if direction == "inbound" else number)
            await call_record.record_outcome(store, outcome, t + ring)
            counts["calls"] += 1
            if not missed:
                continue
            counts["missed"] += 1
            if rng.random() >= 0.8:
                await call_record.record_skip(store, outcome.call, rng.choice(
                    ("cooldown", "withheld", "opted_out")), "bench", t + ring, config.policy)
                counts["skipped"] += 1
                continue
            now = t + ring
            queued = await outbox.enqueue(call_id=outcome.call, kind="textback", number=number,
                                          did=DID, body=TEXT, senders=["modem:a"],
                                          not_before=now, now=now, template="business_hours",
                                          encoding="gsm7", parts=1)
            # every due text goes out, this one and any a reply queued (a STOP confirmation)
            mr = 0
            while (item := await outbox.claim_next(now + 1, senders={"modem:a"})) is not None:
                mr = counts["texted"] % 256
                await outbox.mark_sent(item.id, [mr], "modem:a", now + 3)
                counts["texted" if item.id == queued.id else "other_texts"] += 1
            if rng.random() < 0.95:
                await outbox.part_report("modem:a", mr, True, now + 9)
                counts["delivered"] += 1
            if rng.random() < 0.15:
                clock[0] = now + rng.uniform(60, 3600)
                text = "STOP" if rng.random() < 0.02 else rng.choice(REPLIES)
                await inbound.receive(number=number, text=text, did=DID, via="modem:a",
                                      at=clock[0])
                counts["replies"] += 1
    finally:
        await store.close()
    return counts


def time_cli(args: list[str], runs: int = 3) -> tuple[float, int]:
    """Median seconds of ``python -m textback <args>`` (a fresh process each time)."""
    took, rc = [], 0
    for _ in range(runs):
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "textback", *args], capture_output=True,
                              cwd=REPO)
        took.append(time.monotonic() - t0)
        rc = proc.returncode
    return statistics.median(took), rc


def main(calls: int, quick: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        db = tmp / "textback.db"
        config = tmp / "textback.toml"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(textback_config(ami_port=5038, modem_port=tmp / "ttyUSB0", store=db))
        t0 = time.monotonic()
        counts = asyncio.run(fill(db, config, calls))
        fill_s = time.monotonic() - t0
        size = sum(p.stat().st_size for p in tmp.glob("textback.db*"))
        status_s, status_rc = time_cli(["status", "--json", "--config", str(config)])
        baseline_s, _ = time_cli(["--help"])
        out: dict[str, Any] = {
            "quick": quick, "calls": calls, **{f"rows_{k}": v for k, v in counts.items()},
            "write_path": "real Store/Outbox/InboundHandler APIs (no bulk SQL)",
            "fill_s": round(fill_s, 1), "writes_per_s": round(calls / fill_s, 1),
            "db_mb": round(size / 1e6, 2), "db_bytes_per_call": round(size / calls),
            "status_json_s": round(status_s, 3), "status_rc": status_rc,
            "cli_startup_s": round(baseline_s, 3),
        }
        if (REPO / "textback" / "cli" / "report.py").exists():
            report_s, report_rc = time_cli(["report", "--format", "json", "--config",
                                            str(config)])
            out["report_json_s"] = round(report_s, 3)
            out["report_rc"] = report_rc
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cli() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 000 calls instead of 100 000")
    ap.add_argument("--calls", type=int, default=None)
    args = ap.parse_args()
    calls = args.calls or (5_000 if args.quick else 100_000)
    out = main(calls, args.quick)
    if not args.quick:
        from bench._results import merge_results

        merge_results("store_growth", out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
