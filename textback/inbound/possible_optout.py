"""Possible opt-outs: replies no rule can settle, held for a person to decide.

Why: :mod:`textback.inbound.keywords` can say "optout" or "none" only where a rule settles it. For
"you need to stop" or a lone 🛑 either answer can be wrong, and the two errors are not alike:
texting someone who revoked consent is a TCPA violation that every later text compounds;
silencing someone who wanted a callback loses a customer. So such a reply (class
``possible-optout``) is neither: the number is *held* until staff decide.

While a review is pending for a number:

* nothing automatic is texted to it: queued texts and follow-ups are cancelled now, and the
  store's ``optout_review_hold`` trigger (migration V8) cancels any automatic text queued
  later (a first text for a new missed call, a follow-up, a HELP answer, a confirmation);
* a staff relay (``<CODE> text``) is refused with the two choices, because a person's text
  after a revocation is as unlawful as a machine's;
* staff are told at once (not at the next opening: a decision is due), by SMS to every
  ``staff.sms`` phone and e-mail to ``staff.email``, with the message and two one-tap
  answers in the existing reply-code scheme of :mod:`textback.inbound.staff`:
  ``<CODE> OPTOUT`` (it is an opt-out: the number goes on the do-not-text list) or
  ``<CODE> NOTOPTOUT`` (it is not: texts may go again). ``1`` / ``2`` are short forms;
* if the DID configures ``possible_optout_text`` (default: none), that one clarification
  text is queued once per pending review (the FCC allows a single clarifying text, e.g.
  "Reply STOP to stop texts from us, or tell us how we can help").

A STOP (or any "optout" reply) from the customer settles every pending review of the number
as ``optout`` with ``decided_by = 'customer'``. Staff deciding "OPTOUT" sends no
confirmation to the customer: the FCC's confirmation must follow the revocation within five
minutes, which a person's decision cannot promise.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from textback import webhooks
from textback.inbound.optout import set_opt_out
from textback.inbound.staff import clean, forward_text, pretty_number
from textback.logfmt import log
from textback.outbound.followups import cancel_follow_ups
from textback.outbound.templates import render

if TYPE_CHECKING:
    from collections.abc import Callable

    from textback.config import Config, DidConfig
    from textback.outbound.outbox import Outbox
    from textback.store import Store

logger = logging.getLogger("textback.inbound.possible_optout")

CLARIFY_KIND = "possible-optout-clarify"
HOLD_REASON = "possible-optout"
# The staff answers after the conversation code: "4F2A9C OPTOUT" / "4F2A9C NOTOPTOUT".
DECISION_OPTOUT = "OPTOUT"
DECISION_NOT_OPTOUT = "NOTOPTOUT"
_OPTOUT_ANSWER = re.compile(r"^(?:1|opt[\s-]*out|optout|stop)[\s.!]*$", re.I)
_NOT_OPTOUT_ANSWER = re.compile(
    r"^(?:2|not[\s-]*(?:an?\s+)?opt[\s-]*out|notoptout|keep|not)[\s.!]*$", re.I)


def parse_decision(text: str) -> str | None:
    """"optout", "not-optout" or None for the text after a staff code."""
    t = " ".join(text.split())
    if _OPTOUT_ANSWER.match(t):
        return "optout"
    if _NOT_OPTOUT_ANSWER.match(t):
        return "not-optout"
    return None


def staff_prompt(number: str, body: str, code: str | None, *, missed_at: float | None,
                 now: float, tz: str) -> str:
    """The SMS that asks staff to decide, e.g. ``Possible opt-out? Reply from +1 555-…
    (missed call 14:02, 3 min ago): you need to stop. No texts go to them until you decide:
    reply "4F2A9C OPTOUT" if it is an opt-out, "4F2A9C NOTOPTOUT" if not.``"""
    line = forward_text(number, body, missed_at=missed_at, now=now, tz=tz, code=None)
    ref = f"{code} " if code else ""
    return (f"Possible opt-out? {line}. No texts go to them until you decide: reply "
            f"\"{ref}{DECISION_OPTOUT}\" if it is an opt-out, \"{ref}{DECISION_NOT_OPTOUT}\" "
            "if not.")


class PossibleOptOuts:
    """Holds a number after a ``possible-optout`` reply and applies staff's decision."""

    def __init__(self, store: Store, outbox: Outbox, config: Config, *, mail: Any,
                 missed_at: Callable[[str, str, float], Any],
                 wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.outbox = outbox
        self.config = config
        self.mail = mail  # textback.inbound.staff_mail.MailQueue (the staff desk's)
        self.missed_at = missed_at
        self.wake = wake
        self.hooks: webhooks.Webhooks | None = None  # optout (the daemon sets it)

    async def pending(self, number: str) -> bool:
        row = await self.store.fetchone(
            "SELECT 1 FROM optout_reviews WHERE number = ? AND state = 'pending'", (number,))
        return row is not None

    async def hold(self, number: str, did: DidConfig, body: str, *, message_id: int,
                   code: str | None, senders: tuple[str, ...], at: float) -> int:
        """Hold ``number``, tell staff, maybe queue the one clarification; the review id."""
        clarify = bool(did.possible_optout_text) and not await self.pending(number)
        async with self.store.transaction("possible_optout_hold") as db:
            cur = await db.execute(
                "INSERT INTO optout_reviews (number, did, message_id, code, created_at) "
                "VALUES (?, ?, ?, ?, ?)", (number, did.number, message_id, code, at))
            review = cur.lastrowid
            assert review is not None
        # everything queued to the number but the clarification an earlier hold queued
        cancelled = await self.outbox.cancel_for_number(number, HOLD_REASON, at,
                                                        keep_kinds=(CLARIFY_KIND,))
        follow_ups = await cancel_follow_ups(self.store, number, HOLD_REASON, at)
        log(logger, logging.WARNING, "possible_optout_held", number=number, did=did.number,
            message=message_id, review=review, code=code, cancelled=cancelled,
            follow_ups=follow_ups, clarify=clarify)
        if not did.staff.sms and not did.staff.email and not did.staff.notify:
            log(logger, logging.ERROR, "possible_optout_no_staff", number=number,
                did=did.number,
                fix="configure [did.staff] sms, email or notify: no one can decide")
        missed = await self.missed_at(number, did.number, at)
        prompt = staff_prompt(number, body, code, missed_at=missed, now=at,
                              tz=did.hours.timezone)
        for staff_number in did.staff.sms:
            await self.outbox.enqueue(call_id=None, kind="staff-forward", number=staff_number,
                                      did=did.number, body=prompt, senders=did.senders,
                                      not_before=at, now=at)
        if did.staff.email or did.staff.notify:
            full = forward_text(number, body, missed_at=missed, now=at,
                                tz=did.hours.timezone, code=None, limit=None)
            ref = f"{code} " if code else ""
            text = (f"{full}\n\nThis may be an opt-out. No texts go to "
                    f"{pretty_number(number)} until someone decides. From a staff phone, "
                    f"text \"{ref}{DECISION_OPTOUT}\" to {did.number} if it is an opt-out, "
                    f"or \"{ref}{DECISION_NOT_OPTOUT}\" if it is not.\n")
            subject = (f"Possible opt-out from {pretty_number(number)} to "
                       f"{did.business or did.number}")
            await self.mail.enqueue(did.staff.email, subject, text, now=at)
            await self.mail.notify(did.staff.notify, subject, text, now=at)
        if clarify:
            await self.outbox.enqueue(
                call_id=None, kind=CLARIFY_KIND, number=number, did=did.number,
                body=render(did.possible_optout_text, {
                    "business": did.business, "callback": did.callback or did.number,
                    "booking_url": did.booking_url, "reason": "", "caller": number}),
                senders=senders, not_before=at, now=at)
            async with self.store.transaction("possible_optout_clarified") as db:
                await db.execute("UPDATE optout_reviews SET clarified_at = ? WHERE id = ?",
                                 (at, review))
        self.wake()
        return review

    async def settled_by_customer(self, number: str, at: float) -> int:
        """The customer opted out themselves: every pending review is settled; how many."""
        async with self.store.transaction("possible_optout_customer") as db:
            cur = await db.execute(
                "UPDATE optout_reviews SET state = 'optout', decided_at = ?, "
                "decided_by = 'customer' WHERE number = ? AND state = 'pending'", (at, number))
            return cur.rowcount

    async def staff_reply(self, staff_number: str, did: DidConfig, conversation: Any,
                          text: str, at: float) -> str | None:
        """A coded staff text about ``conversation``: a decision ("review-optout",
        "review-not-optout"), a relay refused while a review is pending
        ("review-pending"), a decision with nothing to decide ("no-review"), or None (an
        ordinary relay, for :mod:`textback.inbound.staff`)."""
        customer = conversation["number"]
        decision = parse_decision(text)
        waiting = await self.pending(customer)
        code = conversation["code"]
        if decision is None and not waiting:
            return None
        if decision is None:
            await self._answer(staff_number, did, f"textback: not sent - "
                               f"{pretty_number(customer)} may have opted out. Decide first: "
                               f"\"{code} {DECISION_OPTOUT}\" if it is an opt-out, "
                               f"\"{code} {DECISION_NOT_OPTOUT}\" if not.", at)
            return "review-pending"
        if not waiting:
            await self._answer(staff_number, did, f"textback: no possible opt-out is waiting "
                               f"for {code}; nothing changed.", at)
            return "no-review"
        await self.decide(customer, decision, staff_number, at)
        if decision == "optout":
            answer = (f"textback: {pretty_number(customer)} is opted out; no more texts "
                      "will go to them.")
        else:
            answer = (f"textback: {pretty_number(customer)} was not an opt-out; texts to "
                      f"them may go again. Answer with \"{code} <your text>\".")
        await self._answer(staff_number, did, answer, at)
        return f"review-{decision}"

    async def decide(self, customer: str, decision: str, by: str, at: float) -> bool:
        """Settle the pending review(s) of ``customer``: ``decision`` "optout" (then it is
        opted out, its queued texts and follow-ups cancelled) or "not-optout"; ``by`` a
        staff number or a web user. False when nothing was pending."""
        if decision not in ("optout", "not-optout"):
            raise ValueError(f"{decision!r}: the decision is 'optout' or 'not-optout'")
        async with self.store.transaction("possible_optout_decided") as db:
            cur = await db.execute(
                "UPDATE optout_reviews SET state = ?, decided_at = ?, decided_by = ? "
                "WHERE number = ? AND state = 'pending'", (decision, at, by, customer))
            if cur.rowcount == 0:
                return False
            async with db.execute(
                    "SELECT message_id, did FROM optout_reviews WHERE number = ? AND "
                    "decided_at = ? ORDER BY id DESC LIMIT 1", (customer, at)) as c:
                row = await c.fetchone()
        message_id = row["message_id"] if row is not None else None
        review_did = row["did"] if row is not None else None
        if decision == "optout":
            await set_opt_out(self.store, customer, True, at, "staff-review", message_id,
                              note=f"possible opt-out confirmed by {by}")
            await webhooks.opt_changed(self.hooks, customer, True, did=review_did,
                                       message_id=message_id, source="staff-review", at=at)
            await self.outbox.cancel_for_number(customer, "opted-out", at)
            await cancel_follow_ups(self.store, customer, "opted-out", at)
        log(logger, logging.INFO, "possible_optout_decided", number=customer,
            decision=decision, staff=by, message=message_id)
        return True

    async def _answer(self, staff_number: str, did: DidConfig, text: str, at: float) -> None:
        await self.outbox.enqueue(call_id=None, kind="staff-answer", number=staff_number,
                                  did=did.number, body=clean(text), senders=did.senders,
                                  not_before=at, now=at)
        self.wake()
