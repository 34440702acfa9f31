"""ESL ingest: events/s of our parser and parser + FreeSWITCH call tracker.

The stream is built from every shared FreeSWITCH capture's event frames (plain and json,
exactly as FreeSWITCH sent them), repeated with renumbered UUIDs so every repetition is new
calls, and with its ``Event-Date-Timestamp`` moved on by the captures' time span each time,
so time goes forward as on a real PBX (the replay clock is the events' time; repeating the
same times kept every call of the run waiting out ``settle_s`` until the end: that was the
RSS growth of issue 12, state and not the allocator), fed in 64 KiB chunks as a socket
gives them. Measured in the same run:

* ``naive_events_per_s``: baseline, a plain split-into-dict parser that URL-decodes every
  header of every event (what most ESL glue does);
* ``parser_events_per_s``: our EslParser framing + Event-Name peek (no tracker);
* ``events_per_s``: FreeswitchStream = parser + tracker, deciding every call;
* ``rss_mb``: resident memory after the stream (no state is kept for decided calls);
  ``rss_mb_at``: resident memory when the stream had passed 1/10 of its events and at its
  end (100k and 1M in a full run), and ``max_open_calls``: the most calls held at once.

    python bench/esl_ingest.py [--quick] [--events N]

Last line: one JSON object. A full run merges it into bench/results.json ("esl_ingest").
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._results import merge_results  # noqa: E402
from textback.pbx.freeswitch.parser import EslParser, peek_event_name  # noqa: E402
from textback.pbx.freeswitch.stream import FreeswitchStream  # noqa: E402
from textback.testing.fake_esl import capture_event_frames  # noqa: E402

TRACES = (ROOT / ".." / "shared" / "traces" / "freeswitch-1.10").resolve()
CHUNK = 64 * 1024
UUID = re.compile(rb"\b[0-9a-f]{4}([0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b")
MARK = b"\x00\x00\x00\x00"
# the event's time (microseconds), in plain and in json frames: same digit count when moved
EVENT_TIME = re.compile(rb'(Event-Date-Timestamp(?:: |":\s*"))([0-9]{16})')


def template() -> tuple[bytes, int]:
    """All captures' event frames, each UUID's first 4 hex digits replaced by a marker."""
    frames: list[bytes] = []
    for path in sorted(TRACES.glob("*.esl")):
        frames += capture_event_frames(path.read_bytes())
    blob = b"".join(frames)
    return UUID.sub(lambda m: MARK + m.group(1), blob), len(frames)


def stream(tpl: bytes, per_rep: int, events: int) -> Iterator[bytes]:
    """64 KiB chunks of ``events`` events: repetitions of the template, new ids and later
    event times each time."""
    pieces: list[bytes] = []
    times: list[int] = []
    last = 0
    for m in EVENT_TIME.finditer(tpl):
        pieces.append(tpl[last:m.end(1)])
        times.append(int(m.group(2)))
        last = m.end(2)
    tail = tpl[last:]
    span = (max(times) - min(times) + 60_000_000) if times else 0
    reps = max(1, events // per_rep)
    buf = b""
    for rep in range(reps):
        shift = rep * span
        parts: list[bytes] = []
        for piece, t in zip(pieces, times, strict=True):
            parts += (piece, b"%d" % (t + shift))
        parts.append(tail)
        buf += b"".join(parts).replace(MARK, b"%04x" % (rep % 0x10000))
        whole = len(buf) - len(buf) % CHUNK  # cut once per repetition, not once per chunk
        for i in range(0, whole, CHUNK):
            yield buf[i:i + CHUNK]
        buf = buf[whole:]
    if buf:
        yield buf


def naive(chunks: list[bytes]) -> int:
    """Baseline: split frames, URL-decode every header into a dict."""
    data = b"".join(chunks).decode("utf-8", "replace")
    n, i = 0, 0
    while True:
        he = data.find("\n\n", i)
        if he < 0:
            break
        hdr = dict(line.split(": ", 1) for line in data[i:he].split("\n") if ": " in line)
        i = he + 2
        body = data[i:i + int(hdr.get("Content-Length", 0))]
        i += int(hdr.get("Content-Length", 0))
        if hdr.get("Content-Type") == "text/event-plain":
            head = body.partition("\n\n")[0]
            _ev = {k: unquote(v) for k, _, v in (ln.partition(": ") for ln in head.split("\n"))}
        else:
            _ev = json.loads(body)
        n += 1
    return n


def run_parser(chunks: list[bytes]) -> int:
    p = EslParser()
    n = 0
    for c in chunks:
        p.feed(c)
        while (f := p.next_frame()) is not None:
            peek_event_name(f)
            n += 1
    return n


class Watch:
    """RSS when the stream passes each of ``marks`` events, and the most calls held."""

    def __init__(self, marks: list[int]) -> None:
        self.todo = sorted(marks)
        self.rss_at: dict[str, float] = {}
        self.max_open = 0


def run_stream(chunks: Iterator[bytes] | list[bytes],
               watch: Watch | None = None) -> tuple[int, int, FreeswitchStream]:
    s = FreeswitchStream()
    calls = 0
    for c in chunks:
        calls += len(s.feed(c))
        if watch is not None:
            watch.max_open = max(watch.max_open, s.tracker.open_calls)
            while watch.todo and s.stats.events >= watch.todo[0]:
                watch.rss_at[str(watch.todo.pop(0))] = round(rss_mb(), 1)
    if watch is not None:
        for mark in watch.todo:  # the stream ended just short of a mark (whole repetitions)
            watch.rss_at[str(mark)] = round(rss_mb(), 1)
    calls += len(s.finish())
    return s.stats.events, calls, s


def timed(fn, *args):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    res = fn(*args)
    return time.perf_counter() - t, res


def rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * 4096 / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small stream, done in < 30 s")
    ap.add_argument("--events", type=int, help="stream size (default 1,000,000; quick 60,000)")
    args = ap.parse_args()
    total = args.events or (60_000 if args.quick else 1_000_000)
    tpl, per_rep = template()
    runs = 3 if args.quick else 1
    rates = []
    calls = events = 0
    dropped: dict[str, int] = {}
    watch = Watch([total // 10, total])
    for _ in range(runs):
        dt, (events, calls, s) = timed(run_stream, stream(tpl, per_rep, total), watch)
        rates.append(events / dt)
        dropped = s.stats.dropped
        open_calls = s.tracker.open_calls
    rss = rss_mb()  # after the stream, before the baseline's sample is held
    # sample: a bounded slice held in memory for the baseline and the parser-alone figure
    sample = list(stream(tpl, per_rep, min(total, 10_000)))
    naive_rates, parser_rates = [], []
    for _ in range(runs):
        dt, n = timed(naive, sample)
        naive_rates.append(n / dt)
        dt, n = timed(run_parser, sample)
        parser_rates.append(n / dt)
    figures = {
        "events": events,
        "calls": calls,
        "events_per_s": round(statistics.median(rates)),
        "parser_events_per_s": round(statistics.median(parser_rates)),
        "naive_events_per_s": round(statistics.median(naive_rates)),
        "tracker_vs_naive": round(statistics.median(rates) / statistics.median(naive_rates), 2),
        "parser_vs_naive": round(statistics.median(parser_rates) / statistics.median(naive_rates),
                                 2),
        "rss_mb": round(rss, 1),
        "rss_mb_at": watch.rss_at,
        "max_open_calls": watch.max_open,
        "open_calls_after": open_calls,
        "dropped": sum(dropped.values()),
        "quick": args.quick,
    }
    if not args.quick:
        merge_results("esl_ingest", figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
