"""Who changed what, when: the ``audit`` table's only writer.

Every change made from the web app (a reply, take-over, hand-back, an outcome, an opt-out
added or removed, a possible opt-out decided) and every ``textback user`` change is one row,
written after the change itself succeeded, so the log never claims what did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textback.store import Store


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    target: str | None
    detail: str | None


async def record(store: Store, *, actor: str, action: str, target: str | None,
                 detail: str | None, at: float) -> None:
    async with store.transaction("audit") as db:
        await db.execute("INSERT INTO audit (at, actor, action, target, detail) "
                         "VALUES (?, ?, ?, ?, ?)", (at, actor, action, target, detail))


async def recent(store: Store, limit: int = 100, target: str | None = None
                 ) -> list[AuditEntry]:
    rows: list[Any] = await store.fetchall(
        "SELECT at, actor, action, target, detail FROM audit "
        "WHERE (:t IS NULL OR target = :t) ORDER BY at DESC, id DESC LIMIT :n",
        {"t": target, "n": limit})
    return [AuditEntry(r["at"], r["actor"], r["action"], r["target"], r["detail"])
            for r in rows]
