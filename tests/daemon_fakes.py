"""What the pipeline, dispatcher, inbound and daemon tests share: a config, outcomes, a
clock the test moves, and a fake ``Sender`` standing in for hardware only (the store,
outbox, policy and templates under test are the real ones)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textback.config import Config, parse_config
from textback.outbound.gate import GateConfig
from textback.pbx.outcome import CallOutcome
from textback.sender import Commit, SendError, SendResult
from textback.testing.lab_config import lab_config_toml

NOW = 1_800_000_000.0
DID = "+15559870000"
CALLER = "+15551230001"  # the fictional caller of the Asterisk 22 captures
STAFF = "+15559870099"

SIP_DESTINATION = "pjsip:trunk/sip:{number}@127.0.0.1:5180"


def config_toml(tmp: Path, *, send_delay: float = 0.0, modem_port: str | None = None,
                policy: dict[str, Any] | None = None, staff: dict[str, Any] | None = None,
                **sections: Any) -> str:
    """The lab office with a SIP trunk beside modem ``a``, a callback number and staff;
    ``policy`` and ``staff`` keys override the lab's, ``sections`` add others (e.g.
    ``webhook=[...]``)."""
    return lab_config_toml(
        store=tmp / "textback.db",
        modem=[{"name": "a", "port": modem_port or "/dev/serial/by-id/usb-test-modem-a"}],
        sip={"destination": SIP_DESTINATION},
        policy={"send_delay_s": send_delay, **(policy or {})},
        did=[{"number": DID, "business": "Acme Plumbing", "callback": "+15559870001",
              "senders": ["modem:a", "sip"], "staff": {"sms": [STAFF], **(staff or {})}}],
        **sections)


def make_config(tmp: Path, *, send_delay: float = 0.0) -> Config:
    text = config_toml(tmp, send_delay=send_delay)
    return parse_config(text, tmp / "textback.toml", check_permissions=False)


def lab_gate() -> GateConfig:
    """The outbox gate of the test config: its DID and staff phone, and the fictional
    +1555 range let through the number plan (``policy.test_number_prefixes``)."""
    return GateConfig.from_config(make_config(Path("/nonexistent")))


def outcome(call: str, **kw: Any) -> CallOutcome:
    """A missed inbound trunk call, as the Asterisk tracker reports direct-noanswer.ami."""
    base: dict[str, Any] = dict(call=call, direction="inbound", caller=CALLER, withheld=False,
                                did=DID, verdict="missed", reason="noanswer", ring_s=20.0,
                                ended_at=NOW)
    base.update(kw)
    return CallOutcome(**base)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeSender:
    """Stands in for a modem or SIP trunk. ``script`` holds what the next sends do: a
    ``SendError`` to raise or a ``SendResult`` to return (then plain success); ``gate``,
    when set, holds every send until the test opens it."""

    def __init__(self, name: str, *, script: list[Any] | None = None) -> None:
        self.name = name
        self.up = True
        self.script = list(script or [])
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.active = 0
        self.max_active = 0

    def available(self) -> bool:
        return self.up

    async def send(self, number: str, text: str, *, status_report: bool = True,
                   did: str | None = None, on_commit: Commit | None = None) -> SendResult:
        self.calls.append((number, text))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if on_commit is not None:  # a real channel commits before its outcome is known
                await on_commit()
            if self.script:
                step = self.script.pop(0)
                if isinstance(step, SendError):
                    raise step
                assert isinstance(step, SendResult)
                return step
            return SendResult(sender=self.name, parts=1, refs=[len(self.calls) % 256])
        finally:
            self.active -= 1


def transient(name: str) -> SendError:
    return SendError(name, "+CMS ERROR: 500 (network busy)", permanent=False)


def permanent(name: str) -> SendError:
    return SendError(name, "+CMS ERROR: 330 (SMSC address unknown)", permanent=True)


@asynccontextmanager
async def opened(tmp: Path) -> Any:
    from textback.store import Store

    store = await Store.open(tmp / "textback.db")
    try:
        yield store
    finally:
        await store.close()


async def pump_link(link: Any, outcomes: list[CallOutcome],
                    texts: list[Any] | None = None) -> None:
    """Take what a PBX link reports, as the daemon's consumer does: decided calls into
    ``outcomes``, texts received into ``texts``. Run it as a task beside ``link.run()``."""
    from textback.pbx.link import CallEnded, TextReceived

    while True:
        event = await link.next_event()
        if isinstance(event, CallEnded):
            outcomes.append(event.outcome)
        elif isinstance(event, TextReceived) and texts is not None:
            texts.append(event)
