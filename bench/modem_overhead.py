"""Driver overhead per SMS part against a zero-delay simulator (target < 1 ms per part).

Baseline in the same run: a bare client on the same pty that writes AT+CMGS, waits for the
prompt, writes the PDU and waits for OK (no session, no encoding). Overhead = median driver
time per part - median bare time per part. Last line: {"overhead_ms_per_part": ..., "parts": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textback.modem.driver import ModemDriver
from textback.modem.pdu import encode_submit
from textback.testing.modem_simulator import ModemSimulator

NUMBER = "+447700900123"
TEXT = "Sorry we missed your call, we will ring you back shortly."


async def bare(sim: ModemSimulator, n: int) -> list[float]:
    part = encode_submit(NUMBER, TEXT)[0]
    loop = asyncio.get_running_loop()
    fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    buf = bytearray()
    got = asyncio.Event()

    def readable() -> None:
        buf.extend(os.read(fd, 4096))
        got.set()

    async def until(marker: bytes) -> None:
        while marker not in buf:
            got.clear()
            await got.wait()
        buf.clear()

    loop.add_reader(fd, readable)
    os.write(fd, b"ATE0\r")
    await until(b"OK\r\n")
    times = []
    for _ in range(n):
        t = time.perf_counter()
        os.write(fd, f"AT+CMGS={part.tpdu_length}\r".encode())
        await until(b">")
        os.write(fd, part.pdu.encode() + b"\x1a")
        await until(b"OK\r\n")
        times.append(time.perf_counter() - t)
    loop.remove_reader(fd)
    os.close(fd)
    return times


async def driven(sim: ModemSimulator, n: int) -> list[float]:
    d = ModemDriver(sim.port)
    await d.open()
    await d.initialise()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await d.send(NUMBER, TEXT, status_report=False)
        times.append(time.perf_counter() - t)
    await d.close()
    return times


async def run(n: int, rounds: int) -> dict[str, float | int]:
    base: list[float] = []
    drv: list[float] = []
    async with ModemSimulator("generic", time_scale=0.0, auto_reports=False) as sim:
        for _ in range(rounds):  # interleave so load on the machine hits both alike
            base += await bare(sim, n)
            drv += await driven(sim, n)
            sim.engine.accepted.clear()
    b, d = statistics.median(base) * 1000, statistics.median(drv) * 1000
    return {"overhead_ms_per_part": round(d - b, 4), "parts": len(drv),
            "driver_ms_per_part": round(d, 4), "baseline_ms_per_part": round(b, 4),
            "ratio": round(d / b, 3) if b else 0.0}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    n, rounds = (200, 3) if args.quick else (1000, 5)
    result = asyncio.run(run(n, rounds))
    if not args.quick:
        path = Path(__file__).with_name("results.json")
        data = json.loads(path.read_text()) if path.exists() else {}
        data["modem_overhead"] = result
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
