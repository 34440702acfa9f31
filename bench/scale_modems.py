"""Scale across modems: drain a backlog of texts over N = 1, 2, 4 simulated modems.

In-process, the real pieces the daemon wires together: Store + Outbox (SQLite in a
temporary directory), one ModemSupervisor + ModemSender per simulated modem (generic
profile on its own pty), and the Dispatcher. The backlog is enqueued first through
``Outbox.enqueue`` (each text lists every modem, rotated, so text i prefers modem
i mod N and falls back to the others, as a multi-modem DID config does); the clock runs
from ``Dispatcher.run`` starting until the dispatcher has sent every text. One modem's
rate (texts/s at N = 1) is the baseline measured in the same run; the target is a rate of
>= 0.95 x N x that rate.

The simulated modem takes the profile's realistic 2.5 s per submitted part (timing.jsonl:
+CMGS 2-3 s per part, gammu #419), scaled by ``--per-part``. A full run drains 300 texts at
2.5 s per part; ``--quick`` 40 texts at 0.1 s per part. Status reports are off in the
simulator (auto_reports=False), so only sending occupies the line.

The three rigs (N = 1, 2, 4: seven simulated modems, three stores, three dispatchers) run
at the same time, in one event loop: sequentially they would take 22 minutes at 2.5 s per
part, beyond ``make bench``'s budget, and the N = 1 drain alone takes 12.5 minutes. They
share nothing but the loop and the CPU, and both are nearly idle: the process's CPU time
over the run is reported (``cpu_s_per_s``) to show it; ``--sequential`` runs them one after
the other for comparison. The last line is one JSON object; a full run merges it into
bench/results.json under "scale_modems".
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._harness import TEXT, caller_for  # noqa: E402
from textback.config import default_policy  # noqa: E402
from textback.modem.sender import ModemSender  # noqa: E402
from textback.modem.supervisor import ModemSupervisor  # noqa: E402
from textback.outbound.dispatcher import Dispatcher  # noqa: E402
from textback.outbound.gate import GateConfig  # noqa: E402
from textback.outbound.outbox import Outbox  # noqa: E402
from textback.sender import Sender  # noqa: E402
from textback.store import Store  # noqa: E402
from textback.testing.modem_simulator import ModemSimulator  # noqa: E402
from textback.testing.modem_simulator.profiles import PROFILES  # noqa: E402


async def drain(n_modems: int, texts: int, per_part: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n_modems}-"))
    scale = per_part / PROFILES["generic"].timing.submit
    sims = [ModemSimulator("generic", link=tmp / f"ttyUSB{k}", time_scale=scale,
                           auto_reports=False) for k in range(n_modems)]
    supervisors: list[ModemSupervisor] = []
    store = await Store.open(tmp / "textback.db")
    dispatcher: Dispatcher | None = None
    runner: asyncio.Task[None] | None = None
    try:
        for sim in sims:
            await sim.start()
        senders: dict[str, Sender] = {}
        for k, sim in enumerate(sims):
            sup = ModemSupervisor(sim.port, name=f"m{k}")
            sup.start()
            supervisors.append(sup)
            senders[f"modem:m{k}"] = ModemSender(sup, f"modem:m{k}")
        for sup in supervisors:
            await sup.wait_state("ready", timeout=60)
        # the outbox's gate with the lab's +1555 range and no caps: this measures sending
        lab = dataclasses.replace(default_policy(), test_number_prefixes=("+1555",),
                                  prefix_hour_cap=10**9, global_hour_cap=10**9)
        outbox = Outbox(store, config=GateConfig(lab, did_regions={"+15559870000": None}))
        names = list(senders)
        now = time.time()
        for i in range(texts):
            rotated = names[i % n_modems:] + names[:i % n_modems]
            await outbox.enqueue(call_id=None, kind="textback", number=caller_for(i),
                                 did="+15559870000", body=TEXT, senders=rotated,
                                 not_before=now, now=now)
        dispatcher = Dispatcher(outbox, senders, clock=time.time)
        t0 = time.monotonic()
        runner = asyncio.create_task(dispatcher.run())
        deadline = t0 + texts * per_part * 3 + 60
        while dispatcher.sent + dispatcher.failed < texts and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        took = time.monotonic() - t0
        per_modem = [len(s.accepted) for s in sims]
        return {"modems": n_modems, "texts": texts, "sent": dispatcher.sent,
                "failed": dispatcher.failed, "drain_s": round(took, 2),
                "texts_per_s": round(dispatcher.sent / took, 3), "per_modem": per_modem}
    finally:
        if dispatcher is not None:
            await dispatcher.stop(5)
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        for sup in supervisors:
            await sup.stop()
        await store.close()
        for sim in sims:
            await sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def main(texts: int, per_part: float, quick: bool,
               sequential: bool = False) -> dict[str, Any]:
    sizes = (1, 2, 4)
    cpu0, wall0 = time.process_time(), time.monotonic()
    if sequential:
        results = [await drain(n, texts, per_part) for n in sizes]
    else:
        results = list(await asyncio.gather(*(drain(n, texts, per_part) for n in sizes)))
    cpu_s_per_s = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    runs = dict(zip(sizes, results, strict=True))
    base = runs[1]["texts_per_s"]
    out: dict[str, Any] = {"quick": quick, "texts": texts, "per_part_s": per_part,
                           "concurrent": not sequential,
                           "cpu_s_per_s": round(cpu_s_per_s, 4),
                           "one_modem_texts_per_s": base}
    for n, r in runs.items():
        out[f"n{n}_drain_s"] = r["drain_s"]
        out[f"n{n}_texts_per_s"] = r["texts_per_s"]
        out[f"n{n}_efficiency"] = round(r["texts_per_s"] / (n * base), 3) if base else None
        out[f"n{n}_sent"] = r["sent"]
        out[f"n{n}_per_modem"] = r["per_modem"]
    out["target_met"] = all(out[f"n{n}_efficiency"] is not None
                            and out[f"n{n}_efficiency"] >= 0.95 for n in (2, 4))
    return out


def cli() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 texts at 0.1 s per part")
    ap.add_argument("--texts", type=int, default=None)
    ap.add_argument("--per-part", type=float, default=None,
                    help="seconds the simulated modem takes per part (default 2.5, real)")
    ap.add_argument("--sequential", action="store_true",
                    help="run N = 1, 2, 4 one after the other instead of at the same time")
    args = ap.parse_args()
    texts = args.texts or (40 if args.quick else 300)
    per_part = args.per_part or (0.1 if args.quick else 2.5)
    out = asyncio.run(main(texts, per_part, args.quick, args.sequential))
    print(f"{'modems':>6} {'drain s':>8} {'texts/s':>8} {'x N x one':>10}")
    for n in (1, 2, 4):
        print(f"{n:>6} {out[f'n{n}_drain_s']:>8} {out[f'n{n}_texts_per_s']:>8} "
              f"{out[f'n{n}_efficiency']!s:>10}")
    if not args.quick:
        from bench._results import merge_results

        merge_results("scale_modems", out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
