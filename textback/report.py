"""What the text-back did and what came of it: the queries behind ``textback report``,
``textback conversations`` and ``textback optout list``.

The report answers the business owner's question — does texting back bring customers
back? — per DID and missed-call reason: missed calls, texted, skipped (by the policy's
reason), delivered, replied, opted out, and called back and answered (a later answered
inbound call from the number, or a connected outbound call to it), with the median time
from call end to text sent and from text to first reply. Outcomes are attributed to a
missed call when they happen within ``window_s`` (7 days) after it; the outcome staff mark
on a conversation in the web inbox (booked, callback-done, not-a-lead, spam:
textback.inbound.desk) counts for the texted missed calls from that number to that DID in
the window before it.

One pass: a single query returns one row per missed call with its outcomes, each an indexed
lookup (messages by call and by number, opt events and calls by number and time), and the
grouping and medians are done here in Python. The CLI modules only parse and print.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from textback.store import Store

ATTRIBUTION_S = 7 * 86400.0
ALL = "all"
# what staff mark a conversation as (textback.inbound.desk, the web inbox)
OUTCOMES = ("booked", "callback-done", "not-a-lead", "spam")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_PER_CALL = """
WITH base AS (
    SELECT c.call_id, c.caller, c.did, c.reason, c.decision, c.skip_reason, c.decided_at,
           coalesce(c.ended_at, c.decided_at) AS end_at,
           json_extract(c.record, '$.recovered') IS NOT NULL AS recovered,
           (SELECT min(m.sent_at) FROM messages m
             WHERE m.call_id = c.call_id AND m.direction = 'out' AND m.number = c.caller
               AND m.sent_at IS NOT NULL) AS texted_at,
           EXISTS (SELECT 1 FROM messages m
             WHERE m.call_id = c.call_id AND m.direction = 'out' AND m.number = c.caller
               AND m.status = 'delivered') AS delivered
      FROM calls c
     WHERE c.direction = 'inbound' AND c.verdict = 'missed' AND c.decided_at >= :since
       AND (:did IS NULL OR c.did = :did)
)
SELECT b.did, b.reason, b.decision, b.skip_reason, b.end_at, b.texted_at, b.delivered,
       b.recovered,
       CASE WHEN b.texted_at IS NULL THEN NULL ELSE
       (SELECT d.outcome FROM conversation_desk d
         WHERE d.number = b.caller AND d.did = b.did AND d.outcome IS NOT NULL
           AND d.outcome_at >= b.texted_at AND d.outcome_at <= b.texted_at + :window
         ORDER BY d.outcome_at LIMIT 1) END AS outcome,
       CASE WHEN b.texted_at IS NULL THEN NULL ELSE
           (SELECT min(i.created_at) FROM messages i
             WHERE i.number = b.caller AND i.direction = 'in'
               AND i.created_at >= b.texted_at AND i.created_at <= b.texted_at + :window)
       END AS replied_at,
       CASE WHEN b.texted_at IS NULL THEN 0 ELSE
           EXISTS (SELECT 1 FROM opt_events e
             WHERE e.number = b.caller AND e.action = 'optout'
               AND e.at >= b.texted_at AND e.at <= b.texted_at + :window)
       END AS opted_out,
       (b.caller IS NOT NULL AND (
           EXISTS (SELECT 1 FROM calls a
             WHERE a.caller = b.caller AND a.direction = 'inbound' AND a.verdict = 'answered'
               AND a.decided_at > b.decided_at AND a.decided_at <= b.decided_at + :window)
        OR EXISTS (SELECT 1 FROM calls o
             WHERE o.callee = b.caller AND o.connected = 1
               AND o.decided_at > b.decided_at AND o.decided_at <= b.decided_at + :window)
       )) AS answered
  FROM base b
"""


@dataclass
class ReportRow:
    """One DID and reason (``reason`` "all" for the DID's total)."""

    did: str
    reason: str
    missed: int = 0
    texted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    replied: int = 0
    opted_out: int = 0
    called_back_answered: int = 0
    # decided from the PBX's own records (CEL/CDR) after textback was away
    recovered: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    text_delays: list[float] = field(default_factory=list, repr=False)
    reply_delays: list[float] = field(default_factory=list, repr=False)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def median_text_s(self) -> float | None:
        return round(statistics.median(self.text_delays), 1) if self.text_delays else None

    @property
    def median_reply_s(self) -> float | None:
        return round(statistics.median(self.reply_delays), 1) if self.reply_delays else None

    def add(self, row: Any) -> None:
        self.missed += 1
        if row["skip_reason"] is not None:
            self.skipped[row["skip_reason"]] = self.skipped.get(row["skip_reason"], 0) + 1
        if row["texted_at"] is not None:
            self.texted += 1
            self.text_delays.append(max(0.0, row["texted_at"] - row["end_at"]))
            if row["replied_at"] is not None:
                self.replied += 1
                self.reply_delays.append(row["replied_at"] - row["texted_at"])
        self.delivered += bool(row["delivered"])
        self.opted_out += bool(row["opted_out"])
        self.called_back_answered += bool(row["answered"])
        self.recovered += bool(row["recovered"])
        if row["outcome"] is not None:
            self.outcomes[row["outcome"]] = self.outcomes.get(row["outcome"], 0) + 1

    @property
    def booked(self) -> int:
        return self.outcomes.get("booked", 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "did": self.did, "reason": self.reason, "missed": self.missed,
            "texted": self.texted, "skipped": self.skipped_total,
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "delivered": self.delivered, "replied": self.replied,
            "opted_out": self.opted_out, "called_back_answered": self.called_back_answered,
            "recovered": self.recovered,
            "booked": self.booked, "outcomes": {k: self.outcomes.get(k, 0) for k in OUTCOMES},
            "median_text_s": self.median_text_s, "median_reply_s": self.median_reply_s,
        }


async def per_call(store: Store, *, since: float | None = None, did: str | None = None,
                   window_s: float = ATTRIBUTION_S) -> list[Any]:
    """One row per missed call with its outcomes (the one query behind every number)."""
    return await store.fetchall(_PER_CALL, {"since": since if since is not None else
                                            float("-inf"), "did": did, "window": window_s})


async def build_report(store: Store, *, since: float | None = None, did: str | None = None,
                       window_s: float = ATTRIBUTION_S) -> list[ReportRow]:
    """Rows per (DID, reason), sorted, each DID followed by its ``all`` total."""
    return group(await per_call(store, since=since, did=did, window_s=window_s))


@dataclass
class Dashboard:
    """What the web dashboard shows, and ``textback report --format json`` under
    "dashboard": the funnel (missed → texted → replied → booked) with skips by reason, the
    median hang-up→text, the reply rate by the hour and weekday of the missed call (local
    time of the business), and missed calls per local day."""

    total: ReportRow
    by_hour: list[tuple[int, int]]  # (texted, replied) per hour 0..23
    by_weekday: list[tuple[int, int]]  # per weekday, Monday first
    per_day: list[tuple[str, int]]  # (YYYY-MM-DD, missed), oldest first, gaps filled

    def as_dict(self) -> dict[str, Any]:
        t = self.total

        def rate(texted: int, replied: int) -> float | None:
            return round(replied / texted, 3) if texted else None

        return {
            "funnel": {"missed": t.missed, "texted": t.texted, "replied": t.replied,
                       "booked": t.booked},
            "skipped_by_reason": dict(sorted(t.skipped.items())),
            "outcomes": {k: t.outcomes.get(k, 0) for k in OUTCOMES},
            "median_text_s": t.median_text_s,
            "reply_rate_by_hour": [{"hour": h, "texted": x, "replied": r, "rate": rate(x, r)}
                                   for h, (x, r) in enumerate(self.by_hour)],
            "reply_rate_by_weekday": [{"weekday": WEEKDAYS[d], "texted": x, "replied": r,
                                       "rate": rate(x, r)}
                                      for d, (x, r) in enumerate(self.by_weekday)],
            "missed_per_day": [{"day": day, "missed": n} for day, n in self.per_day],
        }


def dashboard_from(rows: Iterable[Any], timezone: str) -> Dashboard:
    import datetime as dt
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    total = ReportRow(ALL, ALL)
    hours = [[0, 0] for _ in range(24)]
    weekdays = [[0, 0] for _ in range(7)]
    days: dict[dt.date, int] = {}
    for row in rows:
        total.add(row)
        local = dt.datetime.fromtimestamp(row["end_at"], tz=zone)
        days[local.date()] = days.get(local.date(), 0) + 1
        if row["texted_at"] is not None:
            replied = int(row["replied_at"] is not None)
            for cell in (hours[local.hour], weekdays[local.weekday()]):
                cell[0] += 1
                cell[1] += replied
    per_day: list[tuple[str, int]] = []
    if days:
        day, last = min(days), max(days)
        while day <= last:
            per_day.append((day.isoformat(), days.get(day, 0)))
            day += dt.timedelta(days=1)
    return Dashboard(total, [(x, r) for x, r in hours], [(x, r) for x, r in weekdays],
                     per_day)


async def dashboard(store: Store, *, timezone: str, since: float | None = None,
                    did: str | None = None, window_s: float = ATTRIBUTION_S) -> Dashboard:
    return dashboard_from(await per_call(store, since=since, did=did, window_s=window_s),
                          timezone)


def group(rows: Iterable[Any]) -> list[ReportRow]:
    by_key: dict[tuple[str, str], ReportRow] = {}
    for row in rows:
        did = row["did"] or "-"
        for key in ((did, row["reason"]), (did, ALL)):
            if key not in by_key:
                by_key[key] = ReportRow(*key)
            by_key[key].add(row)
    return [by_key[k] for k in sorted(by_key, key=lambda k: (k[0], k[1] == ALL, k[1]))]


# ------------------------------------------------------------------------ conversations


@dataclass(frozen=True, slots=True)
class Message:
    direction: str  # in | out
    at: float
    body: str
    status: str


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    code: str
    number: str
    did: str
    state: str
    opened_at: float
    last_activity_at: float
    opted_out: bool
    messages: tuple[Message, ...]  # the latest, oldest first


async def conversations(store: Store, *, number: str | None = None, limit: int = 50,
                        last: int = 3) -> list[Conversation]:
    """Conversations, most recently active first, each with its ``last`` messages in both
    directions (texts we sent carry no conversation id, so messages are matched by number
    and DID)."""
    rows = await store.fetchall(
        "SELECT c.*, coalesce(o.opted_out, 0) AS opted_out FROM conversations c "
        "LEFT JOIN opt_outs o ON o.number = c.number "
        "WHERE (:n IS NULL OR c.number = :n) "
        "ORDER BY c.last_activity_at DESC, c.id DESC LIMIT :limit",
        {"n": number, "limit": limit})
    out = []
    for r in rows:
        msgs = await store.fetchall(
            "SELECT direction, created_at, body, status FROM messages "
            "WHERE number = ? AND (did = ? OR did IS NULL) ORDER BY created_at DESC, id DESC "
            "LIMIT ?", (r["number"], r["did"], last))
        out.append(Conversation(
            r["id"], r["code"], r["number"], r["did"], r["state"], r["opened_at"],
            r["last_activity_at"], bool(r["opted_out"]),
            tuple(Message(m["direction"], m["created_at"], m["body"], m["status"])
                  for m in reversed(msgs))))
    return out


# ------------------------------------------------------------------------ opt-outs


@dataclass(frozen=True, slots=True)
class OptOut:
    """A number on the do-not-text list (or its history, with ``action``)."""

    number: str
    at: float
    source: str
    message: str | None  # the text that caused it, when a text did
    action: str = "optout"
    note: str | None = None


async def opted_out(store: Store, number: str | None = None) -> list[OptOut]:
    """Numbers now on the do-not-text list, oldest first (optionally just one number)."""
    rows = await store.fetchall(
        "SELECT o.number, o.at, o.source, m.body, (SELECT e.note FROM opt_events e "
        "  WHERE e.number = o.number AND e.action = 'optout' ORDER BY e.at DESC, e.id DESC "
        "  LIMIT 1) AS note FROM opt_outs o "
        "LEFT JOIN messages m ON m.id = o.source_message_id "
        "WHERE o.opted_out = 1 AND (:n IS NULL OR o.number = :n) ORDER BY o.at, o.number",
        {"n": number})
    return [OptOut(r["number"], r["at"], r["source"], r["body"], note=r["note"]) for r in rows]


async def opt_history(store: Store, number: str) -> list[OptOut]:
    """Every opt-out and opt-in of one number, oldest first."""
    rows = await store.fetchall(
        "SELECT e.number, e.at, e.source, e.action, e.note, m.body FROM opt_events e "
        "LEFT JOIN messages m ON m.id = e.message_id WHERE e.number = ? ORDER BY e.at, e.id",
        (number,))
    return [OptOut(r["number"], r["at"], r["source"], r["body"], r["action"], r["note"])
            for r in rows]


def printable(text: str | None, limit: int = 0) -> str:
    """``text`` safe for a terminal or CSV cell: control, bidi and zero-width characters
    escaped like \\u202e (a reply can hold anything, and must not rewrite the screen)."""
    if text is None:
        return ""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or 0x200B <= code <= 0x200F \
                or 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069 or code == 0xFEFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    s = "".join(out)
    return s if not limit or len(s) <= limit else s[: limit - 1] + "…"


def parse_since(text: str, timezone: str) -> float:
    """``--since``: a date (midnight in ``timezone``, the business's zone) or an ISO date
    and time (``2026-03-01T09:00``, with or without an offset). ValueError names the
    accepted forms."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            when = dt.datetime(day.year, day.month, day.day)
        else:
            when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: write 2026-03-01 or "
                         "2026-03-01T09:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.timestamp()
