"""What the missed-call policy needs to know about a number, read from the store in one go.

``textback.outbound.policy.decide`` is pure: it takes a :class:`PolicySnapshot` of plain
numbers (opted out? texted when? how many texts to this number, prefix, country and
everyone this hour? reached since? a burst from its prefix?). This module is the one query
that fills it, so the decision can be tested without a database and the query tuned without
touching the rules. It only reads.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from textback.outbound.outbox import COUNTED_STATES
from textback.outbound.policy import PolicySnapshot, number_country
from textback.outbound.settings import PolicyConfig
from textback.store import Store

_TOP = "\uffff"  # as call_record: [prefix, prefix + _TOP) is a range


async def policy_snapshot(store: Store, number: str, did: str | None, now: float,
                          prefix: str, policy: PolicyConfig) -> PolicySnapshot:
    """Everything the policy needs to know about ``number`` at ``now``, as plain data
    (read outside any transaction: see :func:`policy_snapshot_in`)."""
    params = _params(number, did, now, prefix, policy)
    return _snapshot(await store.fetchone(_SNAPSHOT_SQL, params), params["country"])


def policy_snapshot_in(db: sqlite3.Connection, number: str, did: str | None,
                       now: float, prefix: str, policy: PolicyConfig) -> PolicySnapshot:
    """:func:`policy_snapshot` read inside the caller's transaction ``db``: the pipeline
    records a call, reads its snapshot and queues its text in one transaction, so the
    counts include every call decided before it in the same batch."""
    params = _params(number, did, now, prefix, policy)
    return _snapshot(db.execute(_SNAPSHOT_SQL, params).fetchone(), params["country"])


def _named_states() -> str:
    return ",".join(f":s{i}" for i in range(len(COUNTED_STATES)))


def _state_params() -> dict[str, str]:
    return {f"s{i}": s for i, s in enumerate(COUNTED_STATES)}


# The one query (see the module doc). The hourly counts walk ``outbox_created`` (``+state``
# keeps SQLite from preferring the state index, which would read every text ever sent). The
# burst count is only taken while no pause covers the number (a paused prefix needs no
# count: call_record.MISSED_FROM_PREFIX's range over the calls_missed_caller index), so a
# flood costs one indexed lookup per call once it is paused.
_SNAPSHOT_SQL = f"""SELECT
  (SELECT opted_out FROM opt_outs WHERE number = :n) AS opted_out,
  (SELECT max(created_at) FROM outbox WHERE number = :n AND did IS :did
      AND state IN ({_named_states()})) AS last_text_at,
  (SELECT count(*) FROM outbox WHERE number = :n AND created_at > :day
      AND state IN ({_named_states()})) AS number_day,
  (SELECT count(*) FROM outbox WHERE substr(number, 1, :plen) = :prefix
      AND created_at > :hour AND +state IN ({_named_states()})) AS prefix_hour,
  (SELECT count(*) FROM outbox WHERE created_at > :hour
      AND +state IN ({_named_states()})) AS global_hour,
  (SELECT max(coalesce(ended_at, decided_at)) FROM calls
      WHERE (caller = :n AND direction = 'inbound' AND verdict = 'answered')
         OR (callee = :n AND connected = 1)) AS reached_at,
  (SELECT count(DISTINCT p.message_id) FROM message_parts p
      JOIN messages m ON m.id = p.message_id
      WHERE m.number = :n AND p.status = 'failed') AS failed,
  (SELECT max(until_at) FROM burst_pauses WHERE until_at > :now
      AND started_at <= :now
      AND substr(:n, 1, length(prefix)) = prefix) AS paused_until,
  CASE WHEN :country IS NULL THEN 0 ELSE
      (SELECT count(*) FROM outbox o CROSS JOIN calls c ON c.call_id = o.call_id
          AND c.caller = o.number
       WHERE c.country = :country AND o.created_at > :hour
         AND +o.state IN ({_named_states()})) END AS country_hour,
  CASE WHEN :burst = 0 OR EXISTS (SELECT 1 FROM burst_pauses
          WHERE until_at > :now AND started_at <= :now
          AND substr(:n, 1, length(prefix)) = prefix) THEN 0 ELSE
      (SELECT count(*) FROM calls WHERE verdict = 'missed'
          AND direction = 'inbound' AND caller >= :prefix
          AND caller < :prefix_top AND decided_at > :since) END AS burst"""


def _params(number: str, did: str | None, now: float, prefix: str,
            policy: PolicyConfig) -> dict[str, Any]:
    return {"n": number, "did": did, "day": now - 86400.0, "hour": now - 3600.0, "now": now,
            "plen": len(prefix), "prefix": prefix,
            "country": number_country(number) if number.startswith("+") else None,
            "burst": int(bool(policy.burst_calls and prefix)), "prefix_top": prefix + _TOP,
            "since": now - policy.burst_window_s, **_state_params()}


def _snapshot(row: Any, country: str | None) -> PolicySnapshot:
    assert row is not None  # a SELECT of subqueries always gives its one row
    return PolicySnapshot(
        opted_out=bool(row["opted_out"]),
        last_text_at=row["last_text_at"],
        texts_to_number_day=row["number_day"],
        texts_to_prefix_hour=row["prefix_hour"],
        texts_global_hour=row["global_hour"],
        reached_at=row["reached_at"],
        failed_deliveries=row["failed"],
        prefix_missed_window=int(row["burst"]),
        prefix_paused_until=row["paused_until"],
        country=country,
        texts_to_country_hour=row["country_hour"],
    )
