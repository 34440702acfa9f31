"""The front desk's hold on a conversation: taken over or not, what came of it, read when.

The only writer of ``conversation_desk`` (one row per conversation, made on first use).

* Take over: a person handles this customer now, so the automatic follow-ups stop — the
  touches still scheduled to the number on this DID are cancelled with the reason
  ``taken-over`` (through ``FollowUps.cancel``), and while the mark stands the follow-up
  scheduler refuses any new touch for it (its stop query reads this table), e.g. one
  scheduled by a later missed call.
* Hand back: the mark goes and the touches cancelled by the take-over are scheduled again
  (``FollowUps.resume``); one already due is released at once, through the same stop checks
  as always (a reply or an opt-out since then still cancels it).
* Outcome: booked, callback-done, not-a-lead or spam; ``textback report`` counts them.
* Read: when staff last opened it; replies after that are unread in the inbox.
* Replied: when staff last answered from the web app (the inbox sorts by it too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textback.report import OUTCOMES

if TYPE_CHECKING:
    from textback.outbound.followups import FollowUps
    from textback.store import Store

TAKEN_OVER = "taken-over"


class DeskError(ValueError):
    """An unknown conversation or outcome."""


@dataclass(frozen=True, slots=True)
class DeskState:
    taken_over_by: str | None
    taken_over_at: float | None
    outcome: str | None
    outcome_by: str | None
    read_at: float | None


class Desk:
    """Take over / hand back / outcome / read marks for conversations."""

    def __init__(self, store: Store, followups: FollowUps | None, *,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.followups = followups
        self.wake = wake

    async def _conversation(self, conversation_id: int) -> tuple[str, str]:
        row = await self.store.fetchone("SELECT number, did FROM conversations WHERE id = ?",
                                        (conversation_id,))
        if row is None:
            raise DeskError(f"no conversation {conversation_id}")
        return str(row["number"]), str(row["did"])

    async def _upsert(self, conversation_id: int, sets: str, params: tuple[object, ...]
                      ) -> None:
        number, did = await self._conversation(conversation_id)
        async with self.store.transaction("conversation_desk") as db:
            await db.execute("INSERT INTO conversation_desk (conversation_id, number, did) "
                             "VALUES (?, ?, ?) ON CONFLICT (conversation_id) DO NOTHING",
                             (conversation_id, number, did))
            await db.execute(f"UPDATE conversation_desk SET {sets} WHERE conversation_id = ?",
                             (*params, conversation_id))

    async def state(self, conversation_id: int) -> DeskState:
        row = await self.store.fetchone(
            "SELECT * FROM conversation_desk WHERE conversation_id = ?", (conversation_id,))
        if row is None:
            return DeskState(None, None, None, None, None)
        return DeskState(row["taken_over_by"], row["taken_over_at"], row["outcome"],
                         row["outcome_by"], row["read_at"])

    async def take_over(self, conversation_id: int, user: str, at: float) -> int:
        """Mark it taken over by ``user``; the follow-ups cancelled."""
        number, did = await self._conversation(conversation_id)
        await self._upsert(conversation_id, "taken_over_by = ?, taken_over_at = ?",
                           (user, at))
        if self.followups is None:
            return 0
        return await self.followups.cancel(number, TAKEN_OVER, at, did=did)

    async def hand_back(self, conversation_id: int, at: float) -> int:
        """Clear the mark; the follow-ups the take-over cancelled are scheduled again."""
        number, did = await self._conversation(conversation_id)
        await self._upsert(conversation_id, "taken_over_by = NULL, taken_over_at = NULL", ())
        if self.followups is None:
            return 0
        return await self.followups.resume(number, did, TAKEN_OVER, at)

    async def set_outcome(self, conversation_id: int, outcome: str | None, user: str,
                          at: float) -> None:
        if outcome is not None and outcome not in OUTCOMES:
            raise DeskError(f"{outcome!r} is not an outcome ({', '.join(OUTCOMES)})")
        await self._upsert(conversation_id, "outcome = ?, outcome_by = ?, outcome_at = ?",
                           (outcome, user if outcome else None, at if outcome else None))

    async def replied(self, conversation_id: int, at: float) -> None:
        """Staff answered from the web app: the conversation moves to the top of the inbox
        (``conversations.last_activity_at`` is the inbound side's to keep)."""
        await self._upsert(conversation_id, "staff_at = ?", (at,))

    async def mark_read(self, conversation_id: int, at: float) -> None:
        await self._upsert(conversation_id, "read_at = max(coalesce(read_at, 0), ?)", (at,))
