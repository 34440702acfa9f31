"""Recovery after downtime: how long one login's read of the PBX's records takes when the
records hold a long history.

``cel_sqlite3_custom`` never rotates its master.db: a year of a busy office is there when
textback logs in. The file here is that: ``--calls`` copies (default 100 000; ``--quick``
10 000) of the real CEL records of direct-noanswer.ami (7 records per call, derived from
its ``Event: CEL`` messages as tests/test_cel_backfill.py does), each renumbered with its
own Uniqueid/Linkedid and caller, spread evenly over 365 days ending now, written in the
shipped columns with Asterisk's default ``<seconds>.<microseconds>`` eventtime. The
measured read is the daemon's: ``read_cel_sqlite`` from one hour ago (what a one-hour
outage asks for) and ``decide_from_cel`` on what it returns; best of 3 runs.

Last line: one JSON object; a full run merges it into bench/results.json under
"recovery".
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._results import merge_results  # noqa: E402
from tests.test_cel_backfill import CONFIG, cel_rows  # noqa: E402
from textback.pbx.asterisk.cel import (  # noqa: E402
    COLUMNS,
    decide_from_cel,
    parse_eventtime,
    read_cel_sqlite,
)

CAPTURE = REPO.parent / "shared" / "traces" / "asterisk-22" / "direct-noanswer.ami"
YEAR_S = 365 * 86400.0


def build(db: Path, calls: int, now: float) -> int:
    template = cel_rows(CAPTURE)
    times = [parse_eventtime(r["eventtime"]) for r in template]
    end = max(times)
    step = YEAR_S / calls
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE cel (AcctId INTEGER PRIMARY KEY, {', '.join(COLUMNS)})")
        rows = []
        for i in range(calls):
            ended = now - YEAR_S + (i + 1) * step
            ids: dict[str, str] = {}
            for r, t in zip(template, times, strict=True):
                row = dict(r)
                for key in ("uniqueid", "linkedid"):
                    row[key] = ids.setdefault(r[key], f"{1700000000 + i}.{len(ids)}")
                row["eventtime"] = f"{ended - end + t:.6f}"
                row["cid_num"] = row["cid_num"].replace("+15551230001", f"+1555{i:07d}")
                rows.append([row[c] for c in COLUMNS])
        con.executemany(f"INSERT INTO cel ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(COLUMNS))})", rows)
    con.close()
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 000 calls (< 30 s)")
    ap.add_argument("--calls", type=int, default=100_000)
    args = ap.parse_args()
    calls = 10_000 if args.quick else args.calls
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "master.db"
        rows = build(db, calls, now)
        best_read = best_total = float("inf")
        recovered = 0
        for _ in range(3):
            t0 = time.perf_counter()
            records = read_cel_sqlite(db, since=now - 3600.0)
            t1 = time.perf_counter()
            outcomes = decide_from_cel(records, CONFIG)
            t2 = time.perf_counter()
            best_read = min(best_read, (t1 - t0) * 1000)
            best_total = min(best_total, (t2 - t0) * 1000)
            recovered = len(outcomes)
        size = db.stat().st_size
    figures = {"calls_in_file": calls, "cel_rows": rows, "file_mb": round(size / 1e6, 1),
               "since": "1 h ago", "recovered_calls": recovered,
               "read_ms": round(best_read, 1), "read_and_decide_ms": round(best_total, 1),
               "quick": args.quick}
    if not args.quick:
        merge_results("recovery", figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
