"""Open calls: memory per open call, and what ticks and events cost with many calls open.

Issue 12 (finding 4) measured the Asterisk tracker walking every open call on every tick and,
with calls watched for restart (``on_call_started``, as the daemon does), on every event:
idle CPU 8 % at 10k open calls, one call's 51 events 0.36 s with 1,000 calls open and 4.2 s
with 10,000. This script opens N calls that never end and measures, at each N:

* ``tick_us``: one idle ``tick()`` (nothing due), and ``tick_vs_1k``: that over the 1k figure;
* ``event_us``: one event of a genuine call (the real direct-noanswer.ami, new ids each time)
  plus the ``tick()`` the live client runs after each read, and ``event_vs_1k``;
* ``rss_per_open_call_b``: resident memory per open call, (RSS at the largest N - RSS at 1k)
  / the calls added (Asterisk: the caller's trunk channel and the phone it rings, watched;
  FreeSWITCH: the a-leg and its b-leg).

The open calls are the real trunk Newchannel (and the Dial's Newchannel/DialBegin) of
../shared/traces/asterisk-22/direct-noanswer.ami with only their ids changed, and the real
CHANNEL_CREATE frames of ../shared/traces/freeswitch-1.10/direct-noanswer.esl likewise.

    python bench/open_calls.py [--quick]

Last line: one JSON object. A full run (also 200k calls) merges it into bench/results.json
("open_calls").
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import merge_results  # noqa: E402
from bench.esl_ingest import rss_mb  # noqa: E402
from textback.pbx.asterisk.parser import AmiMessage, AmiParser  # noqa: E402
from textback.pbx.asterisk.tracker import CallTracker  # noqa: E402
from textback.pbx.freeswitch.parser import EslEvent, decode_event, iter_frames  # noqa: E402
from textback.pbx.freeswitch.tracker import FsCallTracker  # noqa: E402
from textback.pbx.stream import TrackerConfig  # noqa: E402

SHARED = (ROOT / ".." / "shared" / "traces").resolve()


def ami_capture() -> list[AmiMessage]:
    data = (SHARED / "asterisk-22" / "direct-noanswer.ami").read_bytes()
    return [m for m in AmiParser().feed(data) if m.kind == "event"]


def ami_open_call_events(msgs: list[AmiMessage]) -> list[str]:
    """The events that open the call and start the Dial (both channels alive), as text:
    the two Newchannels, the caller's Newexten of Dial, the DialBegin (the VarSets between
    them change nothing the tracker keeps)."""
    end = next(i for i, m in enumerate(msgs) if m.name == "DialBegin")
    return [m.text for m in msgs[:end + 1]
            if m.name in ("Newchannel", "DialBegin")
            or (m.name == "Newexten" and m.get("Application") == "Dial")]


IDS = re.compile(r"1795395183\.([01])\b")


def renumber(text: str, n: int) -> str:
    """New Uniqueids (same epoch, so the clock does not move): call n = 2n, 2n+1."""
    return IDS.sub(lambda m: f"1795395183.{2 * n + int(m[1])}", text)


def fs_creates() -> list[EslEvent]:
    data = (SHARED / "freeswitch-1.10" / "direct-noanswer.esl").read_bytes()
    evs = [decode_event(f) for f in iter_frames(data) if f.is_event]
    return [e for e in evs if e is not None and e.name == "CHANNEL_CREATE"]


UUID = re.compile(r"^[0-9a-f]{8}")


def fs_renumber(ev: EslEvent, n: int) -> EslEvent:
    """The same event with every leg id's first 8 hex digits set to call n."""
    prefix = f"{n:08x}"
    headers = {k: (prefix + v[8:] if len(v) == 36 and UUID.match(v) and v.count("-") == 4
                   else v) for k, v in ev.headers.items()}
    return EslEvent(name=ev.name, headers=headers, body=ev.body)


def time_ticks(tick, now: float, n: int = 200) -> float:  # type: ignore[no-untyped-def]
    """Seconds per idle tick: the best of 5 batches (the least disturbed by the machine)."""
    best = float("inf")
    for batch in range(5):
        t = time.perf_counter()
        for k in range(n):
            tick(now + (batch * n + k) * 1e-6)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def asterisk(sizes: list[int]) -> dict[str, object]:
    msgs = ami_capture()
    opening = ami_open_call_events(msgs)
    genuine = [m.text for m in msgs]
    reports = [0]
    t = CallTracker(TrackerConfig(settle_s=1.0))
    t.on_call_started = lambda s: reports.__setitem__(0, reports[0] + 1)
    now = 1_795_395_183.0
    opened = 0
    base_rss = 0.0
    rows: dict[str, dict[str, float]] = {}
    genuine_n = 10_000_000
    for size in sizes:
        while opened < size:
            for text in opening:
                t.handle(AmiMessage(renumber(text, opened)), now)
            opened += 1
            if opened % 1000 == 0:
                t.tick(now)
        t.tick(now)
        gc.collect()
        rss = rss_mb()
        if size == sizes[0]:
            base_rss = rss
        tick_s = time_ticks(t.tick, now)
        # one genuine call, event by event, ticking after each as the live client does
        per_event = []
        for _ in range(5):
            batch = [AmiMessage(renumber(x, genuine_n)) for x in genuine]
            genuine_n += 1
            start = time.perf_counter()
            for m in batch:
                t.handle(m, now)
                t.tick(now)
            per_event.append((time.perf_counter() - start) / len(batch))
        now += 5.0
        t.tick(now)  # the genuine calls settle and go
        rows[str(size)] = {"open_calls": t.open_calls, "rss_mb": round(rss, 1),
                           "tick_us": round(tick_s * 1e6, 2),
                           "event_us": round(statistics.median(per_event) * 1e6, 2)}
    first, last = rows[str(sizes[0])], rows[str(sizes[-1])]
    for row in rows.values():
        row["tick_vs_1k"] = round(row["tick_us"] / first["tick_us"], 2)
        row["event_vs_1k"] = round(row["event_us"] / first["event_us"], 2)
    per_call = (last["rss_mb"] - base_rss) * 1e6 / (sizes[-1] - sizes[0])
    return {"by_open_calls": rows, "rss_per_open_call_b": round(per_call),
            "reports": reports[0]}


def freeswitch(sizes: list[int]) -> dict[str, object]:
    creates = fs_creates()
    t = FsCallTracker(TrackerConfig(settle_s=1.0))
    now = 1_795_395_183.0
    opened = 0
    base_rss = 0.0
    rows: dict[str, dict[str, float]] = {}
    for size in sizes:
        while opened < size:
            for ev in creates:
                t.handle(fs_renumber(ev, opened), now)
            opened += 1
        gc.collect()
        rss = rss_mb()
        if size == sizes[0]:
            base_rss = rss
        rows[str(size)] = {"open_calls": t.open_calls, "rss_mb": round(rss, 1),
                           "tick_us": round(time_ticks(t.tick, now) * 1e6, 2)}
    first, last = rows[str(sizes[0])], rows[str(sizes[-1])]
    for row in rows.values():
        row["tick_vs_1k"] = round(row["tick_us"] / first["tick_us"], 2)
    per_call = (last["rss_mb"] - base_rss) * 1e6 / (sizes[-1] - sizes[0])
    return {"by_open_calls": rows, "rss_per_open_call_b": round(per_call)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1k, 10k, 100k calls (< 30 s)")
    ap.add_argument("--only", choices=("asterisk", "freeswitch"),
                    help="one PBX in this process (each runs in its own, for a clean RSS)")
    args = ap.parse_args()
    sizes = [1_000, 10_000, 100_000] + ([] if args.quick else [200_000])
    if args.only:
        print(json.dumps((asterisk if args.only == "asterisk" else freeswitch)(sizes)))
        return 0
    started = time.perf_counter()
    parts = {}
    for pbx in ("asterisk", "freeswitch"):
        cmd = [sys.executable, __file__, "--only", pbx] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        parts[pbx] = json.loads(out.strip().splitlines()[-1])
    figures = {
        **parts,
        "rss_per_open_call_b": {pbx: part["rss_per_open_call_b"] for pbx, part in parts.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "quick": args.quick,
    }
    if not args.quick:
        merge_results("open_calls", figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
