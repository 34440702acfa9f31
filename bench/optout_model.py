"""Opt-out model (issue 14): rows in the family table, the score on it (must be 100 %), the
score on the independently written set, and how many ``possible-optout`` each produced.

Both sets go through the real ``textback keywords classify`` (one subprocess, one JSON
string per line on stdin, the CLI's own contract), so what is scored is what an external
check sees. Sets: tests/data/optout_table.tsv (families of issue 14 and their mirror traps,
each row with its rule and source) and tests/data/optout_independent.jsonl (100 replies to
a "Sorry we missed your call … Reply STOP to opt out" text, written before the rules).
Wrong rows are listed on stderr.

``--quick`` scores every fourth table row (and the whole independent set) and says so.
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def load_table() -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / "optout_table.tsv").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            text, cls, _rule, _source = line.split("\t")
            rows.append((json.loads(text), cls))
    return rows


def load_independent() -> list[tuple[str, str]]:
    lines = (DATA / "optout_independent.jsonl").read_text("utf-8").splitlines()
    return [(r["text"], r["class"]) for r in map(json.loads, lines)]


def classify_all(texts: list[str]) -> list[str]:
    stdin = "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
    proc = subprocess.run([sys.executable, "-m", "textback", "keywords", "classify"],
                          input=stdin.encode("utf-8"), capture_output=True, cwd=REPO,
                          timeout=300, check=True)
    out = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert [o["text"] for o in out] == texts, "the CLI changed a message"
    return [o["class"] for o in out]


def score(name: str, rows: list[tuple[str, str]]) -> dict[str, object]:
    got = classify_all([t for t, _ in rows])
    right = sum(g == c for g, (_, c) in zip(got, rows, strict=True))
    for g, (t, c) in zip(got, rows, strict=True):
        if g != c:
            print(f"{name}: {t!r} expected {c}, got {g}", file=sys.stderr)
    return {"rows": len(rows), "right": right, "score": round(right / len(rows), 4),
            "possible_optout": Counter(got)["possible-optout"],
            "classes": dict(sorted(Counter(got).items()))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every fourth table row only")
    args = ap.parse_args()
    table = load_table()
    if args.quick:
        table = table[::4]
        print(f"--quick: scoring {len(table)} of the table's rows")
    results = {"table": score("table", table),
               "independent": score("independent", load_independent()),
               "quick": args.quick}
    t, i = results["table"], results["independent"]
    print(f"table: {t['rows']} rows, {t['right']} right ({t['score']:.1%}), "
          f"{t['possible_optout']} possible-optout")
    print(f"independent: {i['rows']} rows, {i['right']} right ({i['score']:.1%}), "
          f"{i['possible_optout']} possible-optout")
    print(json.dumps(results, sort_keys=True))
    return 0 if t["right"] == t["rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
