"""The inbound journal: every PDU a modem receives is kept raw in the store before anything
decodes it, and texts are decoded, reassembled and handled from there.

Why: a SIM holds 20 to 50 texts and a restart was the only retry. Before this, a text that
arrived while the store was full or locked stayed on the SIM until a restart (a STOP among
them was not honoured), a PDU the codec could not read kept its slot silently, and the parts
of a long text held their slots for the whole reassembly timeout. Now the modem driver hands
each SMS-DELIVER here raw (``journal``: hex, modem, storage slot, time, one commit) and
deletes its SIM slot only after that commit; if the commit fails the driver keeps the PDU on
the SIM and in memory and offers it again (textback.modem.driver). Everything after runs in
``run`` from the table, in arrival order, and is retried every ``RETRY_S`` while the store is
away, so a STOP is honoured within a second of the store returning, without a restart:

- decode (``decode_pdu``); invalid UCS-2 never fails it (U+FFFD; the inbound handler stores
  lone surrogates as U+FFFD too, so "\\udc00STOP" is a STOP);
- undecodable PDUs are kept raw with the codec's error, logged (``inbound_pdu_undecodable``)
  and handed over as an inbound message flagged ``[undecodable text ...]`` from the sender
  when its address can still be read (``peek_sender``): stored in the conversation and
  forwarded to staff like any reply (``textback conversations`` shows it either way);
- multipart: parts wait in the table (state ``new``); the reassembly state lives in memory
  and is rebuilt from the table after a restart or a failed pass, so nothing is lost. After
  ``reassembly_timeout_s`` from its first part a text is delivered as it is, marked
  ``[parts missing: 2 of 66]``;
- handing over: the inbound handler stores the message and, in the same transaction, marks
  its journal rows ``stored`` (``on_stored``), so a text is stored exactly once whatever
  stops the process; once the handler has acted on it the rows are ``done``. A row left
  ``stored`` (the process stopped, or the store went away, while acting) is acted on again
  from the stored message (``resume``).

This module is the only writer of ``inbound_pdus`` (migration V7 in textback/migrations.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from textback.logfmt import log
from textback.modem.pdu import PduError, decode_pdu, peek_sender
from textback.modem.reassembly import InboundMessage, Reassembler
from textback.store import Store, StoreUnavailable

logger = logging.getLogger("textback.inbound")

# a multipart text is delivered as it is this long after its first part arrived
REASSEMBLY_TIMEOUT_S = 600.0
# while the store is away: how often the journal is tried again (a STOP must be honoured
# within 1 s of the store returning)
RETRY_S = 0.25
# with parts waiting: how often their timeout is looked at
EXPIRY_POLL_S = 1.0
# with nothing waiting: a pass anyway now and then (the wake-up does the real work)
IDLE_POLL_S = 30.0


@dataclass(frozen=True)
class JournaledText:
    """A received text ready for the inbound handler: ``rows`` are the journal rows it
    came from (several for a multipart text); ``at`` is when its first part arrived.
    ``undecodable`` holds the codec's error for a PDU that could not be read (``text`` is
    then the flagged placeholder staff see)."""

    modem: str
    number: str | None
    text: str
    at: float
    rows: tuple[int, ...]
    undecodable: str | None = None


# called inside the inbound handler's transaction with the new message's id
OnStored = Callable[[Any, int], Awaitable[None]]
Deliver = Callable[[JournaledText, OnStored], Awaitable[object]]
Resume = Callable[[int], Awaitable[object]]


class InboundJournal:
    """Owns ``inbound_pdus``: ``journal`` writes what modems received, ``run`` turns it
    into handled texts (``deliver`` is the inbound handler, ``resume`` re-acts on a stored
    message whose handling did not finish)."""

    def __init__(self, store: Store, deliver: Deliver, *, resume: Resume | None = None,
                 clock: Callable[[], float] = time.time,
                 reassembly_timeout_s: float = REASSEMBLY_TIMEOUT_S,
                 retry_s: float = RETRY_S) -> None:
        self.store = store
        self.deliver = deliver
        self.resume = resume
        self.clock = clock
        self.reassembly_timeout_s = reassembly_timeout_s
        self.retry_s = retry_s
        self._wake = asyncio.Event()
        self._reset()

    def _reset(self) -> None:
        """Forget the in-memory reassembly: the next pass rebuilds it from the table."""
        self._parts = Reassembler(self.reassembly_timeout_s)
        self._fed: dict[int, tuple[str, float]] = {}  # row id -> (modem, received_at)

    def wake(self) -> None:
        self._wake.set()

    # ---------------------------------------------------------------- in

    async def journal(self, modem: str, storage: str | None, slot: int | None,
                      pdu: str) -> int:
        """Commit one received PDU, raw; its row id. Raises StoreUnavailable (nothing was
        written: the caller keeps the PDU on the SIM). The same PDU from the same slot
        again (its SIM delete was lost to a crash or a port loss, and the modem listed it
        again) is the same text: its existing row is returned."""
        raw = pdu.strip().upper()
        now = self.clock()
        async with self.store.transaction("journal_inbound_pdu") as db:
            if slot is not None:
                async with db.execute(
                        "SELECT id FROM inbound_pdus WHERE modem = ? AND storage IS ? AND "
                        "slot = ? AND pdu = ? ORDER BY id DESC LIMIT 1",
                        (modem, storage, slot, raw)) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    return int(row[0])
            cur = await db.execute(
                "INSERT INTO inbound_pdus (modem, storage, slot, pdu, received_at) "
                "VALUES (?, ?, ?, ?, ?)", (modem, storage, slot, raw, now))
            assert cur.lastrowid is not None
            row_id = cur.lastrowid
        self._wake.set()
        return row_id

    def sink(self, modem: str) -> Callable[[str | None, int | None, str], Awaitable[int]]:
        """What a modem driver calls with (storage, slot, pdu hex): ``journal`` for it."""
        async def journal(storage: str | None, slot: int | None, pdu: str) -> int:
            return await self.journal(modem, storage, slot, pdu)
        return journal

    # ---------------------------------------------------------------- out

    async def run(self) -> None:
        """Pass after pass until cancelled: at once when a PDU is journaled, every
        ``retry_s`` while the store is away, every second while parts wait."""
        waiting = False
        while True:
            self._wake.clear()
            try:
                await self.process()
                if waiting:
                    log(logger, logging.INFO, "inbound_journal_resumed")
                waiting = False
                delay = EXPIRY_POLL_S if len(self._parts) else IDLE_POLL_S
            except StoreUnavailable as exc:
                if not waiting:
                    log(logger, logging.WARNING, "inbound_journal_waiting", kind=exc.kind,
                        error=str(exc), retry_s=self.retry_s)
                waiting = True
                delay = self.retry_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def process(self) -> int:
        """One pass over the unhandled rows, oldest first; how many texts were handed
        over. Raises StoreUnavailable (the in-memory reassembly is then rebuilt from the
        table on the next pass, so a text whose hand-over failed is not lost)."""
        try:
            return await self._pass()
        except BaseException:
            self._reset()
            raise

    async def _pass(self) -> int:
        rows = await self.store.fetchall(
            "SELECT id, modem, storage, slot, pdu, received_at, state, message_id "
            "FROM inbound_pdus WHERE state IN ('new', 'stored') ORDER BY id")
        handed = 0
        resumed: set[int] = set()
        for row in rows:
            if row["state"] == "stored":
                if row["message_id"] not in resumed:
                    resumed.add(row["message_id"])
                    await self._resume(row["message_id"])
                continue
            if row["id"] not in self._fed:
                handed += await self._take(row)
        for msg in self._parts.expire(self.clock()):
            handed += await self._hand(msg)
        return handed

    async def _take(self, row: Any) -> int:
        row_id, modem, at = row["id"], row["modem"], row["received_at"]
        try:
            d = decode_pdu(row["pdu"])
        except PduError as exc:
            log(logger, logging.WARNING, "inbound_pdu_undecodable", modem=modem,
                storage=row["storage"], slot=row["slot"], journal=row_id, error=str(exc),
                kept="raw in inbound_pdus, shown to staff")
            text = f"[undecodable text, kept raw as inbound PDU {row_id}: {exc}]"
            await self._deliver(JournaledText(modem, peek_sender(row["pdu"]), text, at,
                                              (row_id,), str(exc)))
            return 1
        if d.direction != "deliver":
            await self._mark((row_id,), "ignored", error=f"not a received text: {d.direction}")
            return 0
        concat = (d.udh.concat_ref, d.udh.ref_bits, d.udh.part, d.udh.parts) if d.udh else None
        self._fed[row_id] = (modem, at)
        msg = self._parts.add(number=d.number, text=d.text or "", timestamp=d.timestamp,
                              smsc=d.smsc, now=at, concat=concat,
                              location=("journal", row_id))
        return await self._hand(msg) if msg is not None else 0

    async def _hand(self, msg: InboundMessage) -> int:
        rows = tuple(index for _, index in msg.locations)
        modem, at = self._fed[rows[0]]
        text = msg.text
        if not msg.complete:
            text = f"{text} [parts missing: {len(msg.missing)} of {msg.parts}]"
            log(logger, logging.WARNING, "inbound_text_incomplete", modem=modem,
                number=msg.number, parts=msg.parts, missing=len(msg.missing),
                first=rows[0])
        await self._deliver(JournaledText(modem, msg.number, text, at, rows))
        for row_id in rows:
            self._fed.pop(row_id, None)
        return 1

    async def _deliver(self, text: JournaledText) -> None:
        state = "undecodable" if text.undecodable is not None else "stored"

        async def on_stored(db: Any, message_id: int) -> None:
            marks = ",".join("?" * len(text.rows))
            await db.execute(
                f"UPDATE inbound_pdus SET state = ?, error = ?, message_id = ?, "
                f"processed_at = ? WHERE id IN ({marks})",
                (state, text.undecodable, message_id, self.clock(), *text.rows))

        try:
            await self.deliver(text, on_stored)
        except StoreUnavailable:
            raise
        except Exception as exc:  # a bug or a text the handler cannot take: keep it, go on
            log(logger, logging.ERROR, "inbound_text_failed", modem=text.modem,
                journal=text.rows[0], error=f"{type(exc).__name__}: {exc}")
            await self._mark(text.rows, "failed", error=f"{type(exc).__name__}: {exc}")
            return
        if state == "stored":
            await self._mark(text.rows, "done", only="stored")

    async def _resume(self, message_id: int | None) -> None:
        """Act again on a stored message whose handling did not finish."""
        rows = await self.store.fetchall(
            "SELECT id FROM inbound_pdus WHERE message_id IS ? AND state = 'stored'",
            (message_id,))
        ids = tuple(r["id"] for r in rows)
        if message_id is not None and self.resume is not None:
            try:
                await self.resume(message_id)
            except StoreUnavailable:
                raise
            except Exception as exc:
                log(logger, logging.ERROR, "inbound_text_failed", message=message_id,
                    error=f"{type(exc).__name__}: {exc}")
                await self._mark(ids, "failed", error=f"{type(exc).__name__}: {exc}")
                return
        await self._mark(ids, "done", only="stored")

    async def _mark(self, rows: tuple[int, ...], state: str, *, error: str | None = None,
                    only: str | None = None) -> None:
        if not rows:
            return
        marks = ",".join("?" * len(rows))
        where = f"id IN ({marks})" + (" AND state = ?" if only else "")
        params: tuple[Any, ...] = (state, self.clock(), *rows) + ((only,) if only else ())
        async with self.store.transaction("inbound_journal_mark") as db:
            if error is None:
                await db.execute(f"UPDATE inbound_pdus SET state = ?, processed_at = ? "
                                 f"WHERE {where}", params)
            else:
                await db.execute(f"UPDATE inbound_pdus SET state = ?, error = ?, "
                                 f"processed_at = ? WHERE {where}",
                                 (state, error, *params[1:]))
