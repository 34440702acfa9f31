"""Run every benchmark in bench/ and print one table; ``make bench`` / ``make bench-quick``.

Each script prints its figures as one JSON object on its last line. A full run (no --quick)
also lets each script merge its figures into bench/results.json; this runner adds the
machine's CPU, core count and Python version there, so figures are never read without the
machine that produced them.

bench/scale_modems.py is mostly waiting (a simulated modem takes a realistic 2.5 s per
part; one modem drains its 300 texts in 12.5 minutes) at about 1 % of a core, so it runs in
the background from the start while the other scripts run one after the other; that keeps
``make bench`` under 15 minutes. Every other script runs alone (scale_modems aside).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

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


BACKGROUND = ("scale_modems",)
"""Scripts that wait rather than compute: started first, they run beside the others."""


def collect(name: str, returncode: int, stdout: str, stderr_tail: str, took: float,
            rows: dict[str, object]) -> bool:
    """Echo one script's output and keep its JSON last line; False when it failed."""
    sys.stdout.write(stdout)
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    try:
        figures = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        figures = None
    if returncode != 0 or not isinstance(figures, dict):
        print(f"!! {name} failed (exit {returncode}): {stderr_tail or 'no JSON last line'}")
        return False
    figures["_seconds"] = round(took, 1)
    rows[name] = figures
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="each script in under 30 s")
    ap.add_argument("only", nargs="*", help="script names (stems) to run; default all")
    args = ap.parse_args()
    rows: dict[str, object] = {}
    failed = 0
    started = time.monotonic()
    flags = ["--quick"] if args.quick else []
    background: list[tuple[Path, subprocess.Popen[str], float, IO[str]]] = []
    for script in scripts(args.only):
        if script.stem in BACKGROUND:
            print(f"== {script.name} {' '.join(flags)} (in the background)", flush=True)
            # files, not pipes: nobody reads a pipe until the end, and a full one would
            # stall the script
            out: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed below
            proc = subprocess.Popen([sys.executable, str(script), *flags], text=True,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=BENCH.parent)
            background.append((script, proc, time.monotonic(), out))
    for script in scripts(args.only):
        if script.stem in BACKGROUND:
            continue
        print(f"== {script.name} {' '.join(flags)}", flush=True)
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, str(script), *flags], capture_output=True,
                              text=True, cwd=BENCH.parent)
        tail = " ".join(done.stderr.strip().splitlines()[-1:])
        failed += not collect(script.stem, done.returncode, done.stdout, tail,
                              time.monotonic() - t0, rows)
    for script, proc, t0, out in background:
        print(f"== {script.name}: waiting for it to finish", flush=True)
        proc.wait()
        out.seek(0)
        text = out.read()
        out.close()
        tail = " ".join(text.strip().splitlines()[-1:])
        failed += not collect(script.stem, proc.returncode, text, tail,
                              time.monotonic() - t0, rows)
    total_s = round(time.monotonic() - started, 1)
    print()
    print(f"{'benchmark':<20} figures")
    for name, figures in rows.items():
        print(f"{name:<20} {json.dumps(figures)}")
    if not args.quick:
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data["machine"] = dict(machine(), make_bench_s=total_s)
        RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"machine info added to {RESULTS.relative_to(BENCH.parent)}")
    print(f"total: {total_s} s")
    print(json.dumps({"ok": len(rows), "failed": failed, "total_s": total_s,
                      "machine": machine()}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
