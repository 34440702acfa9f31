"""Each store table has exactly one writer module (issue 12: "each table has one writer").

A promise about a table (no second text for a call, an opt-out and its history never
disagree, a journaled PDU is handled once) is kept in one module only if no other module can
change the table behind its back. This reads every module's SQL and checks that the
INSERT / UPDATE / DELETE statements on each table all live in the one module named here.
"""

from __future__ import annotations

import re

from tests.conftest import REPO
from textback.migrations import MIGRATIONS

WRITERS = {
    "calls": "textback/outbound/call_record.py",
    "consent": "textback/outbound/call_record.py",
    "burst_pauses": "textback/outbound/call_record.py",
    "outbox": "textback/outbound/outbox.py",
    "message_parts": "textback/outbound/outbox.py",
    "messages": "textback/outbound/messages.py",
    "follow_ups": "textback/outbound/followups.py",
    "open_calls": "textback/outbound/open_calls.py",
    "opt_outs": "textback/inbound/optout.py",
    "opt_events": "textback/inbound/optout.py",
    "conversations": "textback/inbound/conversations.py",
    "inbound_pdus": "textback/inbound/journal.py",
    "optout_reviews": "textback/inbound/possible_optout.py",
    "callbacks": "textback/inbound/callback.py",
    "staff_mail": "textback/inbound/staff_mail.py",
    "webhook_deliveries": "textback/webhooks.py",
    "web_users": "textback/web/auth.py",
    "web_sessions": "textback/web/auth.py",
    "audit": "textback/web/audit.py",
    "conversation_desk": "textback/inbound/desk.py",
}
# Erasure is not a state change: ``textback forget`` and ``[retention]`` delete the rows
# about one number (or older than N days) in every table, or blank message bodies, and never
# insert or move a row to another state. That is checked statement by statement below.
ERASERS = {"textback/privacy.py"}
# (a statement is read up to its first quote: "UPDATE t SET body = " is where '' begins)
ERASE = re.compile(r"^(?:DELETE\s+FROM\s+[\w{}]+\s|UPDATE\s+\w+\s+SET\s+body\s*=\s*$)", re.I)
SQL_WRITE = re.compile(r"[\"'](?:INSERT|UPDATE|DELETE)\b[^\"']*", re.S)
WRITE = re.compile(r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+([a-z_]+)\b")


def writers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "textback").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel == "textback/migrations.py" or rel in ERASERS:
            continue  # the schema itself (and its triggers); erasure (checked below)
        for table in WRITE.findall(path.read_text(encoding="utf-8")):
            if table != "set":
                found.setdefault(table, set()).add(rel)
    return found


def test_every_table_has_its_one_writer() -> None:
    found = writers()
    extra = {t: sorted(m - {WRITERS.get(t, "?")}) for t, m in found.items()
             if m - {WRITERS.get(t, "?")}}
    assert extra == {}, f"tables written outside their owner module: {extra}"


def test_every_table_of_the_schema_has_an_owner() -> None:
    schema = "\n".join(MIGRATIONS)
    tables = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?([a-z_]+)", schema))
    assert tables - set(WRITERS) == set(), "a new table needs its writer named here"


def test_the_check_sees_a_second_writer(tmp_path: object) -> None:
    """The pattern catches the statement shapes the code uses (so the check can fail)."""
    sql = ('await db.execute("UPDATE calls SET decision = 1")\n'
           'cur = await db.execute("""INSERT INTO outbox (a) VALUES (1)""")\n'
           '"INSERT OR IGNORE INTO consent (x) VALUES (?)" ; "DELETE FROM open_calls"')
    assert WRITE.findall(sql) == ["calls", "outbox", "consent", "open_calls"]


def test_the_eraser_only_deletes_or_blanks_bodies() -> None:
    for rel in ERASERS:
        text = (REPO / rel).read_text(encoding="utf-8")
        statements = [m.group(0).lstrip("\"'") for m in SQL_WRITE.finditer(text)]
        assert statements, f"{rel}: no statement found (the check would pass vacuously)"
        bad = [st for st in statements if not ERASE.match(st)]
        assert bad == [], f"{rel} may only DELETE rows or blank bodies: {bad}"
