"""Staff accounts of the web app: passwords, sessions, one-time login links, the login limit.

The only writer of ``web_users`` and ``web_sessions``. Passwords are stored as argon2id
hashes (argon2-cffi: the password-hashing competition's winner, memory-hard, so a stolen
store is slow to crack); session cookies and login links are random 256-bit tokens of
which only the SHA-256 is stored, so a copy of the store (a backup) logs no one in. Each
session carries its own CSRF token, which every form posts back.

The login limit is per client address and per user name (``LoginLimiter``): after
``max_failures`` failures within ``window_s`` further tries are refused until the oldest
failure ages out, so a guesser can neither hammer one account from many addresses nor many
accounts from one. It lives in memory: a restart forgets it, which costs a guesser a restart
of the daemon they cannot cause.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from textback.errors import TextbackError
from textback.store import Store

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
MIN_PASSWORD = 10
LOGIN_LINK_S = 15 * 60.0

_hasher = PasswordHasher()
# verified against when the user does not exist, so a wrong name costs as long as a wrong
# password (no timing oracle for which names exist)
_DUMMY = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))


class UserError(TextbackError):
    """A bad user name or password; the message says what to change."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UserError(f"{name!r} is not a user name: 1-32 letters, digits, '.', '_' or "
                        "'-', starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: at least {MIN_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    csrf: str
    expires_at: float


async def add_user(store: Store, name: str, password: str, now: float) -> None:
    check_name(name)
    hashed = await asyncio.to_thread(hash_password, password)
    async with store.transaction("web_user_add") as db:
        async with db.execute("SELECT 1 FROM web_users WHERE name = ?", (name,)) as c:
            if await c.fetchone() is not None:
                raise UserError(f"user {name!r} exists already (remove it first to reset)")
        await db.execute("INSERT INTO web_users (name, password_hash, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?)", (name, hashed, now, now))


async def remove_user(store: Store, name: str) -> bool:
    """Remove ``name`` and end its sessions; False when there was no such user."""
    async with store.transaction("web_user_remove") as db:
        cur = await db.execute("DELETE FROM web_users WHERE name = ?", (name,))
        await db.execute("DELETE FROM web_sessions WHERE user_name = ?", (name,))
        return cur.rowcount > 0


async def list_users(store: Store) -> list[tuple[str, float]]:
    rows = await store.fetchall("SELECT name, created_at FROM web_users ORDER BY name")
    return [(r["name"], r["created_at"]) for r in rows]


def _verify(stored: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def check_login(store: Store, name: str, password: str) -> bool:
    """Whether ``password`` is ``name``'s. The hash is checked in a worker thread: argon2
    takes tens of milliseconds of CPU by design, which must not hold the daemon's loop."""
    row = await store.fetchone("SELECT password_hash FROM web_users WHERE name = ?", (name,))
    stored = row["password_hash"] if row is not None else _DUMMY
    ok = await asyncio.to_thread(_verify, stored, password)
    return ok and row is not None


async def start_session(store: Store, user: str, now: float, hours: float
                        ) -> tuple[str, Session]:
    """A new session for ``user``: (cookie token, session)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + hours * 3600.0
    async with store.transaction("web_session_start") as db:
        await db.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
        await db.execute(
            "INSERT INTO web_sessions (token_hash, kind, user_name, csrf, created_at, "
            "expires_at) VALUES (?, 'session', ?, ?, ?, ?)",
            (_digest(token), user, csrf, now, expires))
    return token, Session(user, csrf, expires)


async def session(store: Store, token: str | None, now: float) -> Session | None:
    """The live session of a cookie token; None when unknown, expired or the user is gone."""
    if not token:
        return None
    row = await store.fetchone(
        "SELECT s.user_name, s.csrf, s.expires_at FROM web_sessions s JOIN web_users u "
        "ON u.name = s.user_name WHERE s.token_hash = ? AND s.kind = 'session' "
        "AND s.expires_at > ?", (_digest(token), now))
    return Session(row["user_name"], row["csrf"], row["expires_at"]) if row else None


async def end_session(store: Store, token: str) -> None:
    async with store.transaction("web_session_end") as db:
        await db.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_digest(token),))


async def login_link(store: Store, user: str, now: float, ttl_s: float = LOGIN_LINK_S) -> str:
    """A one-time login token for ``user`` (the demo prints it as a link)."""
    token = secrets.token_urlsafe(32)
    async with store.transaction("web_login_link") as db:
        await db.execute(
            "INSERT INTO web_sessions (token_hash, kind, user_name, csrf, created_at, "
            "expires_at) VALUES (?, 'login-link', ?, '', ?, ?)",
            (_digest(token), user, now, now + ttl_s))
    return token


async def use_login_link(store: Store, token: str, now: float) -> str | None:
    """The user a login token names, consuming it; None when unknown, used or expired."""
    async with store.transaction("web_login_link_use") as db:
        cur = await db.execute(
            "UPDATE web_sessions SET used_at = ? WHERE token_hash = ? AND kind = 'login-link' "
            "AND used_at IS NULL AND expires_at > ?", (now, _digest(token), now))
        if cur.rowcount != 1:
            return None
        async with db.execute("SELECT user_name FROM web_sessions WHERE token_hash = ?",
                              (_digest(token),)) as c:
            row = await c.fetchone()
    return str(row["user_name"]) if row is not None else None


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given), expected)


class LoginLimiter:
    """At most ``max_failures`` failed logins per client address and per user name within
    ``window_s``; ``retry_after`` says how long a refused client must wait."""

    def __init__(self, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, ip: str, user: str, now: float) -> float:
        """0 when a try is allowed, else the seconds until it is."""
        wait = 0.0
        for key in (f"ip:{ip}", f"user:{user.lower()}"):
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, ip: str, user: str, now: float) -> None:
        for key in (f"ip:{ip}", f"user:{user.lower()}"):
            self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 10000:  # a flood of names: forget the oldest key
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, ip: str, user: str) -> None:
        self._failures.pop(f"user:{user.lower()}", None)
