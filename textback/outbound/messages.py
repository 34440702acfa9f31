"""The conversation log: every text, both ways; the only writer of ``messages``.

A text to a customer becomes a message when its sender accepts it (the outbox's
``mark_sent``), and its status follows the delivery reports; a text from a customer becomes
one the moment it is stored, before anything acts on it (the inbound handler). Both go
through here, inside the caller's transaction, so one table keeps one shape of row for each
direction and the report, the web inbox and ``textback conversations`` read the same facts.
"""

from __future__ import annotations

from typing import Any


async def add_outgoing(db: Any, *, number: str, did: str | None, body: str, parts: int,
                       encoding: str | None, status: str, sender: str, call_id: str | None,
                       outbox_id: int, created_at: float, sent_at: float) -> int:
    """A text the sender accepted (``status`` "sent" or "sent-unconfirmed"); its id."""
    cur = await db.execute(
        """INSERT INTO messages (direction, number, did, body, parts, encoding,
               status, sender, call_id, outbox_id, created_at, sent_at)
           VALUES ('out', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (number, did, body, parts, encoding, status, sender, call_id, outbox_id, created_at,
         sent_at))
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


async def add_incoming(db: Any, *, conversation_id: int | None, number: str,
                       did: str | None, body: str, via: str, at: float) -> int:
    """A text a customer (or a staff phone) sent us, as received; its id."""
    cur = await db.execute(
        "INSERT INTO messages (conversation_id, direction, number, did, body, status, "
        "sender, created_at) VALUES (?, 'in', ?, ?, ?, 'received', ?, ?)",
        (conversation_id, number, did, body, via, at))
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


async def set_final_status(db: Any, message_id: int, status: str,
                           delivered_at: float | None) -> None:
    """The delivery reports settled a sent text: "delivered" or "failed"."""
    await db.execute("UPDATE messages SET status = ?, delivered_at = ? WHERE id = ?",
                     (status, delivered_at, message_id))
