"""Run every benchmark in bench/ and print one table; ``make bench`` / ``make bench-quick``.

Each script prints its figures as one JSON object on its last line. A full run (no --quick)
also lets each script merge its figures into bench/results.json; this runner adds the
machine's CPU, core count and Python version there, so figures are never read without the
machine that produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def scripts(only: list[str]) -> list[Path]:
    found = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith(("_", "run_all")))
    return [p for p in found if not only or p.stem in only]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="each script in under 30 s")
    ap.add_argument("only", nargs="*", help="script names (stems) to run; default all")
    args = ap.parse_args()
    rows: dict[str, object] = {}
    failed = 0
    for script in scripts(args.only):
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"== {script.name} {'--quick' if args.quick else ''}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH.parent)
        took = time.monotonic() - t0
        sys.stdout.write(proc.stdout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        try:
            figures = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            figures = None
        if proc.returncode != 0 or not isinstance(figures, dict):
            failed += 1
            print(f"!! {script.name} failed (exit {proc.returncode}): "
                  f"{proc.stderr.strip().splitlines()[-1:] or 'no JSON last line'}")
            continue
        figures["_seconds"] = round(took, 1)
        rows[script.stem] = figures
    print()
    print(f"{'benchmark':<20} figures")
    for name, figures in rows.items():
        print(f"{name:<20} {json.dumps(figures)}")
    if not args.quick:
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data["machine"] = machine()
        RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"machine info added to {RESULTS.relative_to(BENCH.parent)}")
    print(json.dumps({"ok": len(rows), "failed": failed, "machine": machine()}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
