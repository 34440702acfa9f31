"""Tell staff about burst pauses: a flood of missed calls from one prefix is news.

The pause itself is opened by the store in the same transaction as the ``burst`` skip, so
it exists even if the alert cannot be sent yet. This module turns every pause not yet
alerted into one SMS per staff number of the DID the burst was called on (through the
outbox, so the alert is as durable as any text) and a WARNING log line (journald), then
marks the pause alerted. Running it again sends nothing twice: the outbox key is
(call that completed the burst, ``burst-alert:<staff number>``).
"""

from __future__ import annotations

import logging
import time

from textback.config import Config
from textback.logfmt import log
from textback.outbound.call_record import BurstPause, burst_pauses, mark_burst_alerted
from textback.outbound.outbox import Outbox
from textback.store import Store

logger = logging.getLogger("textback.outbound.alerts")

ALERT_KIND = "burst-alert"


def alert_text(pause: BurstPause, business: str) -> str:
    """The staff SMS; short enough for one GSM-7 part in the usual case."""
    until = time.strftime("%H:%M", time.localtime(pause.until_at))
    return (f"textback {business}: {pause.calls} missed calls from {pause.prefix}... in "
            f"{pause.window_s / 60:g} min (spoofed flood?). No texts to {pause.prefix}... "
            f"until {until}.")


async def alert_bursts(store: Store, outbox: Outbox, config: Config, now: float) -> int:
    """Queue staff alerts for every unalerted burst pause; returns how many pauses."""
    pauses = await burst_pauses(store, unalerted=True)
    for pause in pauses:
        did = config.did(pause.did) or (config.dids[0] if config.dids else None)
        staff = did.staff.sms if did is not None else ()
        log(logger, logging.WARNING, "burst_paused", prefix=pause.prefix, did=pause.did,
            calls=pause.calls, window_s=pause.window_s, until=pause.until_at,
            call=pause.call_id, staff=len(staff))
        if did is not None:
            body = alert_text(pause, did.business or did.number)
            for number in staff:
                await outbox.enqueue(call_id=pause.call_id, kind=f"{ALERT_KIND}:{number}",
                                     number=number, did=did.number, body=body,
                                     senders=did.senders, not_before=now, now=now)
        await mark_burst_alerted(store, pause.id, now)
    return len(pauses)
