"""Backups, restores, forgetting a number, and retention: the store's personal data on request.

Why plain ``sqlite3`` and not the daemon's ``Store``: these run from the command line while
the daemon may be running. SQLite's online backup API copies a consistent snapshot page by
page while the daemon keeps writing (WAL readers never block the writer), and every change
here is one ``BEGIN IMMEDIATE`` transaction with a busy timeout, so the daemon sees either
all of it or none. ``secure_delete`` overwrites what is deleted, and a checkpoint moves it out
of the WAL, so a purged message body is not left readable in free pages.

What ``forget`` keeps: the opt-out (``opt_outs`` and ``opt_events``), which is what stops
textback from ever texting the number again; deleting it would undo the customer's STOP.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from textback.migrations import MIGRATIONS

LATEST = len(MIGRATIONS)
_now = time.time  # the clock retention measures from (tests move it)
BUSY_TIMEOUT_MS = 10_000
# outbox states a sender may hold right now: not touched under the daemon's feet
IN_FLIGHT = ("sending",)


class PrivacyError(Exception):
    """A backup, restore or purge that cannot be done; the message says why and what to do."""


@contextlib.contextmanager
def _connect(path: Path, *, create: bool = False) -> Iterator[sqlite3.Connection]:
    if not create and not path.exists():
        raise PrivacyError(f"no store at {path}")
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        yield conn
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, what: Path) -> int:
    """The schema version of a store that passes ``integrity_check``."""
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise PrivacyError(f"{what} is not a textback store: {exc}") from None
    if [r[0] for r in rows] != ["ok"]:
        raise PrivacyError(f"{what} is damaged: {rows[0][0]}")
    if version > LATEST:
        raise PrivacyError(f"{what} has schema version {version}, newer than this textback "
                           f"({LATEST}): restore it with the textback that made it")
    return version


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    bytes: int
    schema_version: int


def backup(store: Path, dest: Path, *, overwrite: bool = False) -> BackupResult:
    """A consistent copy of ``store`` at ``dest`` (mode 0600: it holds personal data),
    taken with the online backup API while the daemon may be writing. Written beside
    ``dest`` first and renamed, so ``dest`` is never a half-written file; checked with
    ``integrity_check`` before the rename."""
    if dest.is_dir():
        dest = dest / f"textback-{time.strftime('%Y%m%d-%H%M%S')}.db"
    if dest.exists() and not overwrite:
        raise PrivacyError(f"{dest} exists; choose another name or pass --force")
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        with _connect(store) as src, _connect(tmp, create=True) as out:
            src.backup(out, pages=1024)
            out.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            version = _check(out, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupResult(dest, dest.stat().st_size, version)


def restore(backup_file: Path, store: Path) -> Path:
    """Replace the store's content with ``backup_file`` (stop the daemon first). The store
    as it was is kept beside it first (returned), and the copy goes through the backup API
    into the store's own connection, so its WAL cannot mix old pages into the restored one."""
    with _connect(backup_file) as src:
        _check(src, backup_file)
    kept = store.with_name(f"{store.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
    if store.exists():
        backup(store, kept)
    with _connect(backup_file) as src, _connect(store, create=True) as dst:
        dst.execute("PRAGMA journal_mode = WAL")
        src.backup(dst)
        _check(dst, store)
    return kept


@dataclass(slots=True)
class Purged:
    """What a purge removed, per table (rows deleted, or bodies blanked)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int) -> None:
        if n:
            self.counts[what] = self.counts.get(what, 0) + n

    def summary(self) -> str:
        if not self.counts:
            return "nothing"
        return ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _national(number: str) -> str:
    """The digits a staff e-mail shows a number with (national form, any punctuation)."""
    import phonenumbers

    try:
        return str(phonenumbers.parse(number).national_number)
    except phonenumbers.NumberParseException:
        return _digits(number)


def _tidy(conn: sqlite3.Connection) -> None:
    """Move purged pages out of the WAL (best effort: a reader may hold an old snapshot)."""
    with contextlib.suppress(sqlite3.OperationalError):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextlib.contextmanager
def _erasing(store: Path) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction that overwrites what it deletes (secure_delete)
    and cascades; committed, or rolled back on any error; then the WAL is emptied of it."""
    with _connect(store) as conn:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        _tidy(conn)


def forget(store: Path, number: str) -> Purged:
    """Delete every call record, message, conversation, queued text, follow-up, callback
    and staff e-mail about ``number`` (E.164); keep its opt-out. Refused while a text to it
    is being sent (the sender holds that row): try again a minute later."""
    purged = Purged()
    national = _national(number)
    with _erasing(store) as conn:
        busy = conn.execute(
            f"SELECT count(*) FROM outbox WHERE number = ? AND state IN "
            f"({','.join('?' * len(IN_FLIGHT))})", (number, *IN_FLIGHT)).fetchone()[0]
        if busy:
            raise PrivacyError(f"a text to {number} is being sent right now; run "
                               "`textback forget` again in a minute")
        calls = [r[0] for r in conn.execute(
            "SELECT call_id FROM calls WHERE caller = ? OR callee = ?", (number, number))]
        messages = [r[0] for r in conn.execute(
            "SELECT id FROM messages WHERE number = ?", (number,))]
        # texts to staff that quote the customer (forwards: "Reply from +1 555-...")
        staff_msgs = _mentioning(conn, "messages", number, national)
        staff_out = _mentioning(conn, "outbox", number, national)
        if conn.execute(f"SELECT count(*) FROM outbox WHERE id IN "
                        f"({','.join('?' * len(staff_out))}) AND state = 'sending'",
                        staff_out).fetchone()[0]:
            raise PrivacyError(f"a staff text about {number} is being sent right now; "
                               "run `textback forget` again in a minute")
        messages += staff_msgs
        purged.add("message parts", _delete_in(conn, "message_parts", "message_id",
                                               messages))
        purged.add("texts queued or sent", conn.execute(
            "DELETE FROM outbox WHERE number = ?", (number,)).rowcount)
        purged.add("staff texts quoting it", _delete_in(conn, "outbox", "id", staff_out))
        purged.add("messages", conn.execute(
            "DELETE FROM messages WHERE number = ?", (number,)).rowcount)
        purged.add("staff texts quoting it", _delete_in(conn, "messages", "id",
                                                        staff_msgs))
        purged.add("conversations", conn.execute(
            "DELETE FROM conversations WHERE number = ?", (number,)).rowcount)
        purged.add("follow-ups", conn.execute(
            "DELETE FROM follow_ups WHERE number = ?", (number,)).rowcount)
        purged.add("callbacks", conn.execute(
            "DELETE FROM callbacks WHERE number = ?", (number,)).rowcount)
        purged.add("consent records", conn.execute(
            "DELETE FROM consent WHERE number = ?", (number,)).rowcount)
        purged.add("consent records", _delete_in(conn, "consent", "call_id", calls))
        purged.add("calls", _delete_in(conn, "calls", "call_id", calls))
        mails = [r[0] for r in conn.execute(
            "SELECT id, subject || ' ' || body FROM staff_mail WHERE state != 'queued'")
            if national and national in _digits(r[1])]
        purged.add("staff e-mails", _delete_in(conn, "staff_mail", "id", mails))
    return purged


def _mentioning(conn: sqlite3.Connection, table: str, number: str, national: str) -> list[object]:
    """Ids of ``table`` rows to other numbers whose body quotes ``number`` in any format."""
    if len(national) < 6:  # too short to tell apart from other digits
        return []
    return [r[0] for r in conn.execute(f"SELECT id, body FROM {table} WHERE number != ?",
                                       (number,))
            if national in _digits(r[1]) or _digits(number) in _digits(r[1])]


def _delete_in(conn: sqlite3.Connection, table: str, column: str,
               values: list[object]) -> int:
    n = 0
    for i in range(0, len(values), 500):
        chunk = values[i:i + 500]
        n += conn.execute(f"DELETE FROM {table} WHERE {column} IN "
                          f"({','.join('?' * len(chunk))})", chunk).rowcount
    return n


def apply_retention(store: Path, *, message_days: float, call_days: float,
                    now: float | None = None) -> Purged:
    """``[retention]``: blank message bodies older than ``message_days`` (texts sent and
    received, queued texts already finished, staff e-mails already sent or given up) and
    delete call records older than ``call_days``; 0 keeps them forever. Opt-outs are kept."""
    now = _now() if now is None else now
    purged = Purged()
    with _erasing(store) as conn:
        if message_days > 0:
            cut = now - message_days * 86400
            purged.add("message bodies", conn.execute(
                "UPDATE messages SET body = '' WHERE created_at < ? AND body != ''",
                (cut,)).rowcount)
            purged.add("message bodies", conn.execute(
                "UPDATE outbox SET body = '' WHERE created_at < ? AND body != '' AND state "
                "NOT IN ('queued', 'sending')", (cut,)).rowcount)
            purged.add("staff e-mail bodies", conn.execute(
                "UPDATE staff_mail SET body = '' WHERE created_at < ? AND body != '' AND "
                "state != 'queued'", (cut,)).rowcount)
        if call_days > 0:
            cut = now - call_days * 86400
            calls = [r[0] for r in conn.execute(
                "SELECT call_id FROM calls WHERE decided_at < ? AND call_id NOT IN "
                "(SELECT call_id FROM outbox WHERE call_id IS NOT NULL AND state IN "
                "('queued', 'sending'))", (cut,))]
            _delete_in(conn, "consent", "call_id", calls)
            purged.add("calls", _delete_in(conn, "calls", "call_id", calls))
    return purged
