"""Callback on reply: a customer texts CALL, the PBX rings staff, then dials the customer.

Staff are rung first (``staff.ring``: an Asterisk channel such as ``Local/600@from-internal``
for a ring group, a FreeSWITCH dial string such as ``group/sales@pbx.example``) so no
customer ever picks up to silence; when a staff phone answers, the PBX dials the customer's
number in ``staff.dial_context`` with the DID as caller ID, so the customer sees the number
they called. Every request is a ``callbacks`` row first (this module is that table's only
writer), then the PBX link's ``originate`` (textback.pbx.link: AMI Originate on Asterisk,
bgapi originate on FreeSWITCH); its result (staff answered or not) is written back and
logged, and a placed callback stops follow-ups. Nothing here knows which PBX it is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from textback.errors import TextbackError
from textback.inbound.keywords import normalise
from textback.logfmt import log
from textback.pbx.link import OriginateRequest, PbxLink

if TYPE_CHECKING:
    from textback.config import Config, DidConfig
    from textback.outbound.outbox import Outbox
    from textback.store import Store

logger = logging.getLogger("textback.inbound.callback")

RING_TIMEOUT_S = 30
_SAFE = re.compile(r"^[A-Za-z0-9_+./@:#*-]+$")
_DIGITS = re.compile(r"^\+?[0-9]+$")


def wants_callback(text: str, words: tuple[str, ...]) -> bool:
    """True when the whole reply (case, punctuation, emoji, spaces ignored) is one of
    ``words``: "CALL", "call me!", "Call me please" is not (unless configured)."""
    norm = " ".join(re.findall(r"[^\W_]+", normalise(text).lower()))
    return bool(norm) and norm in {" ".join(re.findall(r"[^\W_]+", w.lower())) for w in words}


@dataclass(frozen=True, slots=True)
class CallbackResult:
    callback_id: int
    state: str  # "answered", "failed", "requested" (still waiting), "unknown" (restarted)
    detail: str


class Callbacks:
    """Places callbacks through the PBX link and records what became of them."""

    def __init__(self, store: Store, link: PbxLink | None, *, clock: Callable[[], float],
                 on_placed: Callable[[str, str, float], Awaitable[Any]] | None = None,
                 ring_timeout_s: int = RING_TIMEOUT_S) -> None:
        self.store = store
        self.link = link
        self.pbx = link.kind if link is not None else "none"
        self.clock = clock
        self.on_placed = on_placed
        self.ring_timeout_s = ring_timeout_s
        self._tasks: set[asyncio.Task[Any]] = set()
        self._results: dict[int, asyncio.Future[CallbackResult]] = {}  # until ``wait`` reads

    def available(self, did: DidConfig) -> bool:
        return did.staff.ring is not None and self.link is not None

    async def request(self, number: str, did: DidConfig, message_id: int | None,
                      at: float) -> CallbackResult:
        """Record and place one callback; returns when the PBX has it (the answer comes
        later: ``wait``). A bad ring target or number is refused, recorded failed."""
        ring = did.staff.ring
        link = self.link
        context = did.staff.dial_context or (link.dial_context if link is not None else "")
        async with self.store.transaction("callback_request") as db:
            cur = await db.execute(
                "INSERT INTO callbacks (number, did, message_id, pbx, state, requested_at) "
                "VALUES (?, ?, ?, ?, 'requested', ?)",
                (number, did.number, message_id, self.pbx, at))
            cb_id = cur.lastrowid
        assert cb_id is not None
        if ring is None or not _SAFE.match(ring) or not _SAFE.match(context) \
                or not _DIGITS.match(number) or not _DIGITS.match(did.number):
            return await self._finish(cb_id, "failed", "not configured or unsafe ring target")
        if link is None:
            return await self._finish(cb_id, "failed", "no PBX link for callbacks")
        if self.on_placed is not None:
            await self.on_placed(number, did.number, at)
        log(logger, logging.INFO, "callback_requested", id=cb_id, number=number,
            did=did.number, pbx=self.pbx)
        request = OriginateRequest(ring=ring, number=number, context=context, did=did.number,
                                   caller_name=_cid_name(did), timeout_s=self.ring_timeout_s,
                                   tag=str(cb_id))
        fut: asyncio.Future[CallbackResult] = asyncio.get_running_loop().create_future()
        self._results[cb_id] = fut
        task = asyncio.get_running_loop().create_task(self._place(link, cb_id, request, fut))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return CallbackResult(cb_id, "requested", "originate sent")

    async def _place(self, link: PbxLink, cb_id: int, request: OriginateRequest,
                     fut: asyncio.Future[CallbackResult]) -> None:
        try:
            result = await link.originate(request)
        except TextbackError as exc:  # a lost link, a refused command: say why
            await self._finish(cb_id, "failed", f"originate failed: {exc}", fut)
            return
        if result.ref:
            await self._set_ref(cb_id, result.ref)
        await self._finish(cb_id, "answered" if result.answered else "failed",
                           result.detail, fut)

    async def wait(self, callback_id: int, timeout: float) -> CallbackResult | None:
        """The final result of a callback, or None if it did not arrive in ``timeout``."""
        fut = self._results.get(callback_id)
        if fut is not None:
            try:
                result = await asyncio.wait_for(asyncio.shield(fut), timeout)
            except TimeoutError:
                return None
            self._results.pop(callback_id, None)
            return result
        row = await self.store.fetchone("SELECT state, detail FROM callbacks WHERE id = ?",
                                        (callback_id,))
        if row is None or row["state"] == "requested":
            return None
        return CallbackResult(callback_id, row["state"], row["detail"] or "")

    # ------------------------------------------------------------------ bookkeeping

    async def _set_ref(self, cb_id: int, ref: str) -> None:
        async with self.store.transaction("callback_ref") as db:
            await db.execute("UPDATE callbacks SET ref = ? WHERE id = ?", (ref, cb_id))

    async def _finish(self, cb_id: int, state: str, detail: str,
                      fut: asyncio.Future[CallbackResult] | None = None) -> CallbackResult:
        at = self.clock()
        async with self.store.transaction("callback_result") as db:
            await db.execute("UPDATE callbacks SET state = ?, detail = ?, finished_at = ? "
                             "WHERE id = ? AND state = 'requested'", (state, detail, at, cb_id))
        result = CallbackResult(cb_id, state, detail)
        log(logger, logging.INFO if state == "answered" else logging.WARNING,
            "callback_result", id=cb_id, state=state, detail=detail)
        if fut is not None and not fut.done():
            fut.set_result(result)
        return result


LOST_DETAIL = "textback restarted before the PBX reported the result"
LOST_ALERT_KIND = "callback-unknown"


def lost_callback_text(number: str, business: str, requested_at: float, tz: str) -> str:
    """The staff SMS for a callback whose result was lost: one GSM-7 part in the usual
    case, and an instruction, because nobody knows whether the customer was rung."""
    from textback.inbound.staff import pretty_number

    when = dt.datetime.fromtimestamp(requested_at, ZoneInfo(tz)).strftime("%H:%M")
    return (f"textback {business}: the callback to {pretty_number(number)} asked at {when} "
            f"has no result (textback restarted). Please call them.")


async def resolve_lost_callbacks(store: Store, outbox: Outbox, config: Config,
                                 started_at: float) -> int:
    """At start: callbacks still ``requested`` from before this start lost their result
    with the old process (an AMI OriginateResponse or ESL BACKGROUND_JOB only goes to the
    connection that asked). They are never placed again (that could ring the customer
    twice); each becomes ``unknown`` and the DID's staff phones get one SMS asking a human
    to call. The SMS is queued first with a key per callback and staff number, so a crash
    between the two steps repeats nothing; returns how many were resolved."""
    rows = await store.fetchall(
        "SELECT id, number, did, requested_at FROM callbacks WHERE state = 'requested' "
        "AND requested_at < ? ORDER BY id", (started_at,))
    for row in rows:
        did = config.did(row["did"]) or (config.dids[0] if config.dids else None)
        staff = did.staff.sms if did is not None else ()
        if did is not None:
            body = lost_callback_text(row["number"], did.business or did.number,
                                      row["requested_at"], did.hours.timezone)
            for phone in staff:
                await outbox.enqueue(call_id=f"callback:{row['id']}",
                                     kind=f"{LOST_ALERT_KIND}:{phone}", number=phone,
                                     did=did.number, body=body, senders=did.senders,
                                     not_before=started_at, now=started_at)
        async with store.transaction("callback_lost") as db:
            await db.execute("UPDATE callbacks SET state = 'unknown', detail = ?, "
                             "finished_at = ? WHERE id = ? AND state = 'requested'",
                             (LOST_DETAIL, started_at, row["id"]))
        log(logger, logging.WARNING, "callback_result_lost", id=row["id"],
            number=row["number"], did=row["did"], staff_sms=len(staff),
            why="restarted before the PBX reported it; not placed again")
    return len(rows)


def _cid_name(did: DidConfig) -> str:
    name = re.sub(r"[^A-Za-z0-9 ._-]", "", did.business or "")[:30].strip()
    return name or "Callback"
