"""Callback on reply: a customer texts CALL, the PBX rings staff, then dials the customer.

Staff are rung first (``staff.ring``: an Asterisk channel such as ``Local/600@from-internal``
for a ring group, a FreeSWITCH dial string such as ``group/sales@pbx.example``) so no
customer ever picks up to silence; when a staff phone answers, the PBX dials the customer's
number in ``staff.dial_context`` with the DID as caller ID, so the customer sees the number
they called. Every request is a ``callbacks`` row first, then the originate; its result
(staff answered or not) is written back and logged, and a placed callback stops follow-ups.

* Asterisk: AMI ``Originate`` with ``Async: true`` (the action returns at once; the result
  arrives later as an ``OriginateResponse`` event with our ActionID; ``Reason: 4`` means
  answered). The daemon routes those events here (``on_originate_response``).
* FreeSWITCH: ``bgapi originate {vars}<ring> <number> XML <context> <name> <did> <timeout>``;
  the BACKGROUND_JOB body is ``+OK <uuid>`` when the staff leg answered, ``-ERR <CAUSE>``
  otherwise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from textback.inbound.keywords import normalise
from textback.logfmt import log

if TYPE_CHECKING:
    from textback.config import Config, DidConfig
    from textback.outbound.outbox import Outbox
    from textback.store import Store

logger = logging.getLogger("textback.inbound.callback")

RING_TIMEOUT_S = 30
# Asterisk's OriginateResponse Reason (enum ast_control_frame_type of the outgoing leg)
AMI_REASONS = {"0": "failed", "1": "hangup", "3": "ring-timeout", "4": "answered",
               "5": "busy", "8": "congestion"}
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
    """Places callbacks through the PBX link and records what became of them.

    ``send_action`` is ``AmiClient.send_action`` (Asterisk) and ``bgapi`` is
    ``EslClient.bgapi`` (FreeSWITCH); exactly one is given, matching ``pbx``.
    """

    def __init__(self, store: Store, pbx: str, *, clock: Callable[[], float],
                 send_action: Callable[[dict[str, str]], Awaitable[Mapping[str, str]]]
                 | None = None,
                 bgapi: Callable[[str, float], Awaitable[str]] | None = None,
                 on_placed: Callable[[str, str, float], Awaitable[Any]] | None = None,
                 ring_timeout_s: int = RING_TIMEOUT_S) -> None:
        self.store = store
        self.pbx = pbx
        self.clock = clock
        self.send_action = send_action
        self.bgapi = bgapi
        self.on_placed = on_placed
        self.ring_timeout_s = ring_timeout_s
        self._pending: dict[str, tuple[int, asyncio.Future[CallbackResult]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._results: dict[int, asyncio.Future[CallbackResult]] = {}  # until ``wait`` reads

    def available(self, did: DidConfig) -> bool:
        return did.staff.ring is not None and (
            self.send_action is not None or self.bgapi is not None)

    async def request(self, number: str, did: DidConfig, message_id: int | None,
                      at: float) -> CallbackResult:
        """Record and place one callback; returns when the PBX has accepted it (the answer
        comes later: ``wait``). A bad ring target or number is refused, recorded failed."""
        ring = did.staff.ring
        context = did.staff.dial_context or (
            "from-internal" if self.pbx == "asterisk" else "default")
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
        if self.on_placed is not None:
            await self.on_placed(number, did.number, at)
        log(logger, logging.INFO, "callback_requested", id=cb_id, number=number,
            did=did.number, pbx=self.pbx)
        if self.pbx == "asterisk" and self.send_action is not None:
            return await self._ami(cb_id, number, did, ring, context)
        if self.pbx == "freeswitch" and self.bgapi is not None:
            return await self._esl(cb_id, number, did, ring, context)
        return await self._finish(cb_id, "failed", "no PBX link for callbacks")

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

    # ------------------------------------------------------------------ Asterisk

    async def _ami(self, cb_id: int, number: str, did: DidConfig, ring: str,
                   context: str) -> CallbackResult:
        action_id = f"textback-callback-{cb_id}"
        fut: asyncio.Future[CallbackResult] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = (cb_id, fut)
        self._results[cb_id] = fut
        await self._set_ref(cb_id, action_id)
        assert self.send_action is not None
        try:
            reply = await self.send_action({
                "Action": "Originate", "ActionID": action_id, "Channel": ring,
                "Context": context, "Exten": number, "Priority": "1",
                "CallerID": f"\"{_cid_name(did)}\" <{did.number}>",
                "Timeout": str(self.ring_timeout_s * 1000), "Async": "true",
                "Variable": f"TEXTBACK_CALLBACK={cb_id}",
            })
        except Exception as exc:  # a lost link, a timeout: the callback failed, say why
            self._pending.pop(action_id, None)
            return await self._finish(cb_id, "failed", f"originate not sent: {exc}", fut)
        if reply.get("Response", "").lower() != "success":
            self._pending.pop(action_id, None)
            return await self._finish(cb_id, "failed",
                                      f"originate refused: {reply.get('Message', '')}", fut)
        return CallbackResult(cb_id, "requested", "originate queued")

    def on_originate_response(self, msg: Mapping[str, str] | Any) -> None:
        """An ``OriginateResponse`` event from the AMI stream (any ActionID; ours are kept)."""
        action_id = msg.get("ActionID") or ""
        entry = self._pending.pop(action_id, None)
        if entry is None:
            return
        cb_id, fut = entry
        reason = msg.get("Reason") or ""
        answered = (msg.get("Response") or "").lower() == "success" and reason == "4"
        detail = f"reason {reason} ({AMI_REASONS.get(reason, 'unknown')})"
        task = asyncio.get_running_loop().create_task(
            self._finish(cb_id, "answered" if answered else "failed", detail, fut))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ FreeSWITCH

    async def _esl(self, cb_id: int, number: str, did: DidConfig, ring: str,
                   context: str) -> CallbackResult:
        digits = did.number
        variables = ",".join([
            f"origination_caller_id_number={digits}",
            f"origination_caller_id_name={_cid_name(did).replace(' ', '_')}",
            f"effective_caller_id_number={digits}",
            f"originate_timeout={self.ring_timeout_s}",
            f"textback_callback={cb_id}",
        ])
        cmd = (f"originate {{{variables}}}{ring} {number} XML {context} "
               f"{_cid_name(did).replace(' ', '_')} {digits} {self.ring_timeout_s}")
        fut: asyncio.Future[CallbackResult] = asyncio.get_running_loop().create_future()
        self._results[cb_id] = fut
        key = f"esl-{cb_id}"
        self._pending[key] = (cb_id, fut)
        task = asyncio.get_running_loop().create_task(self._esl_wait(cb_id, key, cmd, fut))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return CallbackResult(cb_id, "requested", "bgapi originate sent")

    async def _esl_wait(self, cb_id: int, key: str, cmd: str,
                        fut: asyncio.Future[CallbackResult]) -> None:
        assert self.bgapi is not None
        try:
            body = (await self.bgapi(cmd, float(self.ring_timeout_s + 15))).strip()
        except Exception as exc:  # link lost or job never answered
            self._pending.pop(key, None)
            await self._finish(cb_id, "failed", f"originate failed: {exc}", fut)
            return
        self._pending.pop(key, None)
        if body.startswith("+OK"):
            await self._set_ref(cb_id, body[3:].strip()[:64])
            await self._finish(cb_id, "answered", "staff answered", fut)
        else:
            await self._finish(cb_id, "failed", body.removeprefix("-ERR").strip()[:100]
                               or "no answer", fut)

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
