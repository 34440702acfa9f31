"""AMI ingest: events/s of panoramisk 1.4's parser, of ours, and of ours + call tracker.

The stream: every shared Asterisk call capture (banner and login response stripped),
concatenated, repeated with renumbered ids (each round gets its own Uniqueid/Linkedid epoch
prefix, so every call is a new call) until the target event count, fed in 64 KiB chunks as
a socket gives them. All three contenders get the same bytes in the same run:

* panoramisk: ``AMIProtocol.data_received`` (its own decode + split + ``Message.from_line``),
  with a factory that only counts dispatched events;
* ours: ``AmiParser.feed`` with every message's full header dict built
  (``parser_full_headers_events_per_s``): like for like, the dict-building work panoramisk
  always does; this is the comparison (``parser_vs_panoramisk``). The lazy framer alone
  (one decode per batch, headers read on demand: what the tracker actually pays) is
  ``parser_events_per_s`` / ``lazy_parser_vs_panoramisk``, labelled as such;
* ours + tracker: ``AsteriskStream.feed`` with an injected clock, wired as the daemon wires
  it: the stream's progress callback (``on_call_started``, CallStarted for restarts) set,
  the shipped ``TrackerConfig()`` (settle window included).

RSS is read from /proc after the tracker run (which runs first, in a fresh process).
``--quick`` runs a short stream; the last line is one JSON object. A full run merges its
figures into bench/results.json under "ami_ingest".
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textback.pbx.asterisk.parser import AmiParser  # noqa: E402
from textback.pbx.asterisk.stream import AsteriskStream  # noqa: E402
from textback.pbx.stream import TrackerConfig  # noqa: E402

TRACES = REPO.parent / "shared" / "traces" / "asterisk-22"
CHUNK = 64 * 1024
PREFIX = b"1795395"


def base_round() -> tuple[bytes, int, int]:
    """(bytes of one round, events in it, calls in it)."""
    expected = [json.loads(x) for x in (TRACES / "expected.jsonl").read_text().splitlines()
                if x.strip()]
    files = sorted({e["file"] for e in expected})
    parts = []
    for name in files:
        data = (TRACES / name).read_bytes()
        data = data[data.index(b"\r\n\r\n", data.index(b"Response:")) + 4:]
        parts.append(data)
    blob = b"".join(parts)
    events = blob.count(b"\r\nEvent: ") + blob.startswith(b"Event: ")
    return blob, events, len(expected)


def rounds(blob: bytes, n: int) -> Any:
    """Round i: the blob with the id epoch prefix 1795395 → 1795395+i (unique ids)."""
    for i in range(n):
        yield i, blob.replace(PREFIX, str(int(PREFIX) + i).encode())


def chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_tracker(blob: bytes, n: int) -> tuple[float, int, int, int]:
    """Seconds, events, outcomes, calls still open."""
    stream = AsteriskStream(TrackerConfig())  # shipped defaults, as the daemon runs it
    # the daemon's wiring: the stream reports each call's progress (restart safety)
    assert stream.tracker.on_call_started is not None
    spent = 0.0
    outcomes = 0
    for r, data in rounds(blob, n):
        parts = chunks(data)
        step = 600.0 / len(parts)  # one round = 10 minutes of PBX time
        t = time.perf_counter()
        for k, part in enumerate(parts):
            outcomes += len(stream.feed(part, now=r * 1000.0 + k * step))
        spent += time.perf_counter() - t
    t = time.perf_counter()
    outcomes += len(stream.tick(n * 1000.0 + 10))
    spent += time.perf_counter() - t
    return spent, stream.stats.events, outcomes, stream.tracker.open_calls


def run_parser(blob: bytes, n: int, full: bool) -> tuple[float, int]:
    parser = AmiParser()
    spent = 0.0
    events = 0
    for _, data in rounds(blob, n):
        parts = chunks(data)
        t = time.perf_counter()
        for part in parts:
            msgs = parser.feed(part)
            if full:
                for m in msgs:
                    m.headers()
            events += len(msgs)
        spent += time.perf_counter() - t
    return spent, events


def run_panoramisk(blob: bytes, n: int) -> tuple[float, int]:
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        events = 0

        def dispatch(self, message: Any) -> None:
            self.events += 1

    class Transport:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    proto = AMIProtocol()
    proto.connection_made(Transport())
    factory = Factory()
    proto.factory = factory
    proto.encoding = "utf8"
    spent = 0.0
    for _, data in rounds(blob, n):
        parts = chunks(data)
        t = time.perf_counter()
        for part in parts:
            proto.data_received(part)
        spent += time.perf_counter() - t
    return spent, factory.events


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short stream, done in < 30 s")
    ap.add_argument("--events", type=int, help="target event count (default 1M, quick 60k)")
    args = ap.parse_args()
    target = args.events or (60_000 if args.quick else 1_000_000)
    repeats = 3
    blob, per_round, calls_per_round = base_round()
    n_rounds = max(1, -(-target // per_round))
    gc.collect()
    rss_before = rss_mb()

    tracker_runs = []
    for i in range(repeats if args.quick else 1):
        spent, events, outcomes, still_open = run_tracker(blob, n_rounds)
        tracker_runs.append(events / spent)
        if i == 0:
            gc.collect()
            rss_after = rss_mb()
            check = {"events": events, "outcomes": outcomes, "open_calls": still_open,
                     "expected_outcomes": n_rounds * calls_per_round}
    parser_runs = []
    full_runs = []
    pano_runs = []
    for _ in range(repeats):
        spent, events = run_parser(blob, n_rounds, full=False)
        parser_runs.append(events / spent)
        spent, events = run_panoramisk(blob, n_rounds)
        pano_runs.append(events / spent)
    for _ in range(1 if not args.quick else repeats):
        spent, events = run_parser(blob, n_rounds, full=True)
        full_runs.append(events / spent)
    if not args.quick:
        for _ in range(repeats - 1):
            spent, events, _, _ = run_tracker(blob, n_rounds)
            tracker_runs.append(events / spent)

    parser = statistics.median(parser_runs)
    full = statistics.median(full_runs)
    tracker = statistics.median(tracker_runs)
    pano = statistics.median(pano_runs)
    figures = {
        "events": check["events"],
        "outcomes": check["outcomes"],
        "expected_outcomes": check["expected_outcomes"],
        "open_calls_after": check["open_calls"],
        "parser_full_headers_events_per_s": round(full),
        "parser_vs_panoramisk": round(full / pano, 2),  # like for like: every header built
        "lazy_parser_vs_panoramisk": round(parser / pano, 2),
        "tracker_vs_panoramisk": round(tracker / pano, 2),
        "rss_before_mb": round(rss_before, 1),
        "parser_events_per_s": round(parser),
        "tracker_events_per_s": round(tracker),
        "panoramisk_events_per_s": round(pano),
        "rss_mb": round(rss_after, 1),
    }
    print(f"stream: {check['events']} events in {n_rounds} rounds of {per_round}, "
          f"{CHUNK // 1024} KiB chunks; medians of {repeats} runs", file=sys.stderr)
    if not args.quick:
        from bench._results import merge_results

        merge_results("ami_ingest", figures)
    last = {k: figures[k] for k in ("parser_events_per_s", "tracker_events_per_s",
                                    "panoramisk_events_per_s", "rss_mb")}
    last.update({k: v for k, v in figures.items() if k not in last})
    print(json.dumps(last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
