"""The do-not-text list: the only writer of ``opt_outs`` (the current state per number) and
``opt_events`` (its history: who opted out or in, when, through which message or command).

Every path that changes a number's consent — a STOP or START text, a staff decision on a
possible opt-out, ``textback optout add|remove``, the web app — goes through
:func:`set_opt_out`, so the state and its history can never disagree. Reading whether a
number is opted out needs no module: the outbound gate reads ``opt_outs`` in its own
transaction.
"""

from __future__ import annotations

from textback.store import Store


async def set_opt_out(store: Store, number: str, opted_out: bool, at: float, source: str,
                      message_id: int | None = None, note: str | None = None) -> None:
    """Record an opt-out (True) or opt-in (False) and its history row."""
    async with store.transaction("set_opt_out") as db:
        await db.execute(
            """INSERT INTO opt_outs (number, opted_out, at, source_message_id, source)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (number) DO UPDATE SET opted_out = excluded.opted_out,
                   at = excluded.at, source_message_id = excluded.source_message_id,
                   source = excluded.source""",
            (number, int(opted_out), at, message_id, source))
        await db.execute(
            "INSERT INTO opt_events (number, action, at, message_id, source, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (number, "optout" if opted_out else "optin", at, message_id, source, note))

