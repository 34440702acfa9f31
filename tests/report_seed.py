"""A small store with a known history, written by the real pipeline, outbox and inbound
handler (no hand-made rows), for the report, conversations and optout tests.

Timeline (seconds after NOW), DID +15559870000, send delay 0:
  c1   +15551230001 missed noanswer at 0  → texted at 5, delivered at 8, reply at 65;
       answered inbound call from it at 600 (the reply is forwarded to staff at 215)
  c2   +15551230002 missed busy at 10     → texted at 25, replies STOP at 125 (opt-out)
  c3   +15551230001 missed noanswer at 100 → skipped: cooldown
  c4   withheld missed noanswer at 150    → skipped: withheld
  c5   +15551230003 missed busy at 200    → texted at 215 (with B's opt-out confirmation);
       staff call it back at 300
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.daemon_fakes import DID, NOW, Clock, config_toml, lab_gate
from textback.config import Config, parse_config
from textback.inbound.handler import InboundHandler
from textback.outbound.outbox import Outbox
from textback.outbound.pipeline import CallPipeline
from textback.pbx.outcome import CallOutcome
from textback.store import Store

A, B, C = "+15551230001", "+15551230002", "+15551230003"


def write_config(tmp: Path) -> tuple[Path, Config]:
    path = tmp / "textback.toml"
    path.write_text(config_toml(tmp))
    os.chmod(path, 0o600)
    return path, parse_config(path.read_text(), path, check_permissions=False)


def missed(call: str, caller: str | None, reason: str, at: float) -> CallOutcome:
    return CallOutcome(call=call, direction="inbound", caller=caller, withheld=caller is None,
                       did=DID, verdict="missed", reason=reason, ring_s=20.0, ended_at=at)


async def seed(tmp: Path) -> Config:
    _, config = write_config(tmp)
    store = await Store.open(config.store.path)
    clock = Clock(NOW)
    outbox = Outbox(store, config=lab_gate())
    pipe = CallPipeline(store, outbox, config, clock=clock)
    inbound = InboundHandler(store, outbox, config, clock=clock)

    async def at(t: float) -> None:
        clock.t = NOW + t

    mrs = iter(range(1, 256))

    async def send(t: float) -> None:
        """The modem sends everything due (as the dispatcher would), one MR per text."""
        await at(t)
        while (item := await outbox.claim_next(clock.t)) is not None:
            await outbox.mark_sent(item.id, [next(mrs)], "modem:a", clock.t)

    try:
        await at(0)
        await pipe.handle(missed("c1", A, "noanswer", clock.t))
        await send(5)
        await at(8)
        await outbox.part_report("modem:a", 1, True, clock.t)
        await at(10)
        await pipe.handle(missed("c2", B, "busy", clock.t))
        await send(25)
        await at(65)
        await inbound.receive(number=A, text="ok thanks, call me after 5", did=DID,
                              via="modem:a", at=clock.t)
        await at(100)
        await pipe.handle(missed("c3", A, "noanswer", clock.t))
        await at(125)
        await inbound.receive(number=B, text="STOP", did=DID, via="modem:a", at=clock.t)
        await at(150)
        await pipe.handle(missed("c4", None, "noanswer", clock.t))
        await at(200)
        # c5 ended while the daemon was down: recovered from the PBX's CEL at its restart
        recovered = missed("c5", C, "busy", clock.t)
        recovered.extra["recovered"] = "cel"
        await pipe.handle(recovered)
        await send(215)
        await at(300)
        await pipe.handle(CallOutcome(call="o1", direction="outbound", caller="201",
                                      withheld=False, did=None, verdict="ignored",
                                      reason="outbound", callee=C, connected=True,
                                      ended_at=clock.t))
        await at(600)
        await pipe.handle(CallOutcome(call="a1", direction="inbound", caller=A,
                                      withheld=False, did=DID, verdict="answered",
                                      reason="answered", ended_at=clock.t))
    finally:
        await store.close()
    return config
