"""Replies from customers: stored first, then opt-out / opt-in / help handled, staff told.

Order matters as it does for calls: the text is in the store before anything acts on it,
so a crash can lose no reply. A STOP puts the number on the do-not-text list, cancels every
queued text to it, and queues exactly one confirmation; a START from an opted-out number
re-opts in with one confirmation (from a number that is not opted out it is just a message).
HELP gets the business name and callback number (an urgent plea that says "help" goes to
staff instead). Any reply stops the follow-ups of its DID. A reply of CALL (``callback_words``)
makes the PBX ring staff and then the customer (``textback.inbound.callback``). Everything else is a
conversation for staff (``textback.inbound.staff``): forwarded with the conversation's short code,
and a text from a staff phone that starts with a code is relayed to that customer.

Every answer goes through the outbox's gate (``textback.outbound.gate``): no answer to a
premium-rate or shared-cost number or a short code, none to an opted-out number but the one opt-out
confirmation, at most ``policy.kind_day_caps`` of each kind per number a day (one HELP
answer by default).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from textback import webhooks
from textback.config import Config, DidConfig
from textback.inbound import conversations
from textback.inbound.callback import wants_callback
from textback.inbound.keywords import classify, is_urgent
from textback.inbound.optout import set_opt_out
from textback.inbound.staff import StaffDesk
from textback.logfmt import log
from textback.modem.pdu import storable_text
from textback.numbers import normalise_caller
from textback.outbound import messages
from textback.outbound.followups import cancel_follow_ups
from textback.outbound.outbox import Outbox
from textback.store import Store

if TYPE_CHECKING:
    from textback.inbound.callback import Callbacks
    from textback.outbound.followups import FollowUps

logger = logging.getLogger("textback.inbound.handler")

OPTOUT_CONFIRM = ("{business}: you are unsubscribed and will get no more texts from us. "
                  "Reply START to opt back in.")
OPTIN_CONFIRM = "{business}: you are subscribed again. Reply STOP to opt out."
HELP_ANSWER = "{business}: call us on {callback}. Reply STOP to opt out."
MAX_BODY = 10_000

# called with the open write transaction and the new message's id (see ``receive``)
OnStored = Callable[[Any, int], Awaitable[None]]


class InboundHandler:
    """Every text a customer sends, from any modem or the PBX, goes through ``receive``.

    The message is stored first (a reply is never lost to a later failure), attached to the
    conversation of the number and DID, then acted on by what it asks for: an opt-out is
    recorded before anything else is sent, an opt-in or HELP is answered, a callback
    request places a call, anything else is forwarded to staff. Every answer it sends goes
    through the outbox like a missed-call text, so the same caps and duplicate guards apply.
    """

    def __init__(self, store: Store, outbox: Outbox, config: Config, *,
                 clock: Callable[[], float], wake: Callable[[], None] = lambda: None,
                 staff: StaffDesk | None = None, followups: FollowUps | None = None,
                 callbacks: Callbacks | None = None) -> None:
        self.store = store
        self.outbox = outbox
        self.config = config
        self.clock = clock
        self.wake = wake
        self.staff = staff if staff is not None else StaffDesk(store, outbox, config,
                                                               wake=wake)
        self.followups = followups
        self.callbacks = callbacks
        self.hooks: webhooks.Webhooks | None = None  # reply.received, optout/in, delivered

    def reconfigure(self, config: Config) -> None:
        """A reloaded config (SIGHUP): DIDs, staff and words for the next text received."""
        self.config = config
        self.staff.reconfigure(config)

    async def _did_for(self, number: str, did: str | None) -> DidConfig | None:
        """The DID a reply belongs to: the one it came in on, else the last one that
        texted this number, else the only/first configured DID."""
        if did and self.config.did(did) is not None:
            return self.config.did(did)
        row = await self.store.fetchone(
            "SELECT did FROM messages WHERE number = ? AND direction = 'out' AND did IS NOT "
            "NULL ORDER BY id DESC LIMIT 1", (number,))
        if row is not None and self.config.did(row["did"]) is not None:
            return self.config.did(row["did"])
        return self.config.dids[0] if self.config.dids else None

    async def receive(self, *, number: str | None, text: str, did: str | None, via: str,
                      at: float, on_stored: OnStored | None = None) -> int | None:
        """Store one inbound text and act on it; returns its message id.

        ``on_stored(db, message_id)`` runs inside the transaction that stores the message:
        the inbound journal marks its rows there, so a text is stored exactly once even if
        the process dies right after. A lone UTF-16 surrogate (broken UCS-2) is stored and
        classified as U+FFFD, never refused."""
        region = self.config.trunks.default_region
        caller = normalise_caller(number, region) or "unknown"
        body = storable_text((text or "")[:MAX_BODY])
        from_staff = caller != "unknown" and self.staff.is_staff(caller)
        target = await self._did_for(caller, did)
        did_number = target.number if target else did
        message_id, code = await self._store_message(caller, did_number, body, via, at,
                                                     conversation=not from_staff,
                                                     on_stored=on_stored)
        kind = classify(body)
        log(logger, logging.INFO, "text_received", number=caller, did=did_number, via=via,
            message=message_id, keyword=kind, chars=len(body), staff=from_staff)
        return await self._act(caller, target, body, via, at, message_id, code, from_staff)

    async def resume(self, message_id: int) -> int | None:
        """Act on a message that was stored but whose handling may not have finished (the
        process stopped, or the store went away, in between): what ``receive`` does after
        storing it. A STOP or START whose opt-out/opt-in was recorded is not acted on again;
        anything else is (at least once: a HELP answer or a staff forward may go twice)."""
        row = await self.store.fetchone(
            "SELECT m.number, m.did, m.body, m.sender, m.created_at, m.conversation_id, "
            "c.code FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.id = ? AND m.direction = 'in'", (message_id,))
        if row is None:
            return None
        if await self.store.fetchone("SELECT 1 FROM opt_events WHERE message_id = ?",
                                     (message_id,)) is not None:
            # its STOP/START was recorded: acting again would only cancel the confirmation
            # queued the first time (a STOP cancels every queued text to the number)
            return message_id
        caller, body, via, at = row["number"], row["body"], row["sender"] or "", \
            row["created_at"]
        from_staff = caller != "unknown" and self.staff.is_staff(caller)
        target = await self._did_for(caller, row["did"])
        log(logger, logging.INFO, "text_resumed", number=caller, message=message_id,
            keyword=classify(body))
        return await self._act(caller, target, body, via, at, message_id, row["code"],
                               from_staff)

    async def _act(self, caller: str, target: DidConfig | None, body: str, via: str,
                   at: float, message_id: int, code: str | None, from_staff: bool
                   ) -> int | None:
        kind = classify(body)
        if caller == "unknown" or target is None:
            return message_id
        if from_staff:
            outcome = await self.staff.handle_staff_text(caller, body, at, via)
            log(logger, logging.INFO, "staff_text", staff=caller, outcome=outcome,
                message=message_id)
            return message_id
        await webhooks.reply_received(self.hooks, message_id, klass=kind, at=at)
        if kind != "optout":  # any reply stops this DID's follow-ups (STOP: all of them)
            if self.followups is not None:
                await self.followups.cancel(caller, "replied", at, did=target.number)
            else:
                await self._cancel_follow_ups(caller, target.number, "replied")
        senders = _reply_senders(target, via)
        urgent = is_urgent(body, target.urgent_words)
        if kind == "optout":
            await self._opt_out(caller, target, senders, message_id, at)
        elif kind == "optin":
            await self._opt_in(caller, target, senders, message_id, at, code)
        elif kind == "possible-optout" and not await self._opted_out(caller):
            # issue 14: held until staff decide (textback.inbound.possible_optout)
            await self.staff.reviews.hold(caller, target, body, message_id=message_id,
                                          code=code, senders=senders, at=at)
        elif kind == "help" and not urgent:
            await self._reply(caller, target, senders, HELP_ANSWER, "help", at)
        elif wants_callback(body, target.callback_words) and await self._call_back(
                caller, target, message_id, at, code, body):
            pass
        else:
            await self.staff.forward(caller, target, body, code=code, urgent=urgent, at=at)
        return message_id

    async def _call_back(self, number: str, did: DidConfig, message_id: int, at: float,
                         code: str | None, body: str) -> bool:
        """Start a callback when this DID has one configured; False otherwise (the reply
        is then an ordinary message for staff)."""
        if self.callbacks is None or not self.callbacks.available(did) \
                or await self._opted_out(number):
            return False
        result = await self.callbacks.request(number, did, message_id, at)
        note = ("asked for a call back: the PBX is ringing staff now" if
                result.state != "failed" else f"asked for a call back, which failed: "
                f"{result.detail}; please call them")
        await self.staff.forward(number, did, body, code=code, urgent=False, at=at,
                                 note=note)
        return True

    async def _cancel_follow_ups(self, number: str, did: str, reason: str) -> None:
        await cancel_follow_ups(self.store, number, reason, self.clock(), did=did)

    async def delivery_report(self, sender: str, mr: int | None, category: str | None,
                              at: float) -> None:
        if mr is None or category not in ("delivered", "failed"):
            return
        message_id = await self.outbox.part_report(sender, mr, category == "delivered", at)
        log(logger, logging.INFO, "delivery_report", sender=sender, mr=mr, status=category,
            message=message_id)
        await webhooks.delivery_report(self.hooks, message_id, at=at)

    async def _store_message(self, number: str, did: str | None, body: str, via: str,
                             at: float, *, conversation: bool = True,
                             on_stored: OnStored | None = None
                             ) -> tuple[int, str | None]:
        """The message id and its conversation's short code (None: no conversation, e.g.
        a staff phone's text)."""
        async with self.store.transaction("inbound") as db:
            conversation_id = None
            code = None
            if did is not None and conversation:
                conversation_id, code = await conversations.touch_or_open(db, number, did, at)
            message_id = await messages.add_incoming(
                db, conversation_id=conversation_id, number=number, did=did, body=body,
                via=via, at=at)
            if on_stored is not None:
                await on_stored(db, message_id)
            return message_id, code

    async def _opted_out(self, number: str) -> bool:
        row = await self.store.fetchone("SELECT opted_out FROM opt_outs WHERE number = ?",
                                        (number,))
        return bool(row and row["opted_out"])

    async def _opt_out(self, number: str, did: DidConfig, senders: tuple[str, ...],
                       message_id: int, at: float) -> None:
        already = await self._opted_out(number)
        await set_opt_out(self.store, number, True, at, "keyword", message_id)
        # a confirmation still queued from an earlier STOP stays: it is the one text
        # allowed after an opt-out, and a second STOP must not lose it
        cancelled = await self.outbox.cancel_for_number(number, "opted-out", at,
                                                        keep_kinds=("optout-confirm",))
        follow_ups = await cancel_follow_ups(self.store, number, "opted-out", at)
        await self.staff.reviews.settled_by_customer(number, at)
        log(logger, logging.INFO, "opted_out", number=number, cancelled=cancelled,
            follow_ups=follow_ups, message=message_id, again=already)
        if not already:
            await webhooks.opt_changed(self.hooks, number, True, did=did.number,
                                       message_id=message_id, source="keyword", at=at)
            await self._reply(number, did, senders, OPTOUT_CONFIRM, "optout-confirm", at)

    async def _opt_in(self, number: str, did: DidConfig, senders: tuple[str, ...],
                      message_id: int, at: float, code: str | None) -> None:
        if not await self._opted_out(number):
            row = await self.store.fetchone("SELECT body FROM messages WHERE id = ?",
                                            (message_id,))
            await self.staff.forward(number, did, row["body"] if row else "START", code=code,
                                     urgent=False, at=at)
            return
        await set_opt_out(self.store, number, False, at, "keyword", message_id)
        log(logger, logging.INFO, "opted_in", number=number, message=message_id)
        await webhooks.opt_changed(self.hooks, number, False, did=did.number,
                                   message_id=message_id, source="keyword", at=at)
        await self._reply(number, did, senders, OPTIN_CONFIRM, "optin-confirm", at)

    async def _reply(self, number: str, did: DidConfig, senders: tuple[str, ...],
                     template: str, kind: str, at: float) -> None:
        """Queue an automatic answer; the outbox's gate refuses (and records) what must
        not go: an opted-out number, a premium or short-code sender, a cap reached."""
        body = template.format(business=did.business or "We",
                               callback=did.callback or did.number)
        queued = await self.outbox.enqueue(call_id=None, kind=kind, number=number,
                                           did=did.number, body=body, senders=senders,
                                           not_before=at, now=at)
        if queued.queued:
            self.wake()


def _reply_senders(did: DidConfig, via: str) -> tuple[str, ...]:
    """Answer on the channel the text came in on first, then the DID's usual order."""
    order = [via] if via in did.senders else []
    return tuple(order + [s for s in did.senders if s not in order])
