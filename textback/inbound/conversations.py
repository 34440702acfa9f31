"""Conversations: one per customer number and DID, with the short code staff quote to
answer; the only writer of ``conversations``.

A conversation opens with the customer's first text on a line and stays open; every text
either way moves its ``last_activity_at`` so the newest conversations come first in
``textback conversations`` and the web inbox. The code is random (6 hex digits) rather than
a row id so a staff member cannot answer the wrong customer by mistyping one digit.
"""

from __future__ import annotations

import secrets
from typing import Any


async def touch_or_open(db: Any, number: str, did: str, at: float) -> tuple[int, str]:
    """The open conversation of ``number`` on ``did`` (opened now if there is none), its
    activity moved to ``at``; its id and code. Inside the caller's transaction ``db``."""
    async with db.execute("SELECT id, code FROM conversations WHERE number = ? AND did = ? "
                          "AND state = 'open'", (number, did)) as c:
        row = await c.fetchone()
    if row is not None:
        await db.execute("UPDATE conversations SET last_activity_at = ? WHERE id = ?",
                         (at, row["id"]))
        return int(row["id"]), str(row["code"])
    code = await _free_code(db)
    cur = await db.execute(
        "INSERT INTO conversations (number, did, code, opened_at, last_activity_at) "
        "VALUES (?, ?, ?, ?, ?)", (number, did, code, at, at))
    assert cur.lastrowid is not None
    return int(cur.lastrowid), code


async def touch(db: Any, conversation_id: int, at: float) -> None:
    """Something happened in the conversation (a staff answer relayed)."""
    await db.execute("UPDATE conversations SET last_activity_at = ? WHERE id = ?",
                     (at, conversation_id))


async def _free_code(db: Any) -> str:
    """A short code no conversation uses yet (6 hex digits: 16.7 million codes)."""
    while True:
        code = secrets.token_hex(3).upper()
        async with db.execute("SELECT 1 FROM conversations WHERE code = ?", (code,)) as c:
            if await c.fetchone() is None:
                return code
