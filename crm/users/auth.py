"""Dashboard login: the password check, throttling per source, roles, and whether an open
session still stands.

Every failed login answers the same message, whatever the reason (unknown email, wrong
password, disabled account), so the form never tells whether an account exists. Failures
are counted per source (the client address with the email, and the address alone), never
per account: a stranger somewhere else cannot lock the owner out, however often they try.

A session carries a fingerprint of the user row (password hash, role, active); the
dashboard re-checks it on every rerun, so disabling a user or resetting a password ends
that user's open sessions at their next click.

`throttle_delay` and `session_fingerprint` decide; db/users.py and db/login_throttle.py record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from crm.users import passwords
from db import login_throttle, users
from db.config import env_int

Role = str  # 'owner' | 'staff'
FAILURE_MESSAGE = "Wrong email or password."
# Failures of one email from one source before each further attempt waits; and of one
# source across all emails (password spraying).
FREE_FAILURES_PER_EMAIL = 3
FREE_FAILURES_PER_SOURCE = 20
MAX_DELAY = timedelta(minutes=5)
FAILURE_MEMORY = timedelta(minutes=30)  # a run of failures older than this is forgotten
# A fixed hash to verify against when the email is unknown, so timing does not reveal it.
_DUMMY_HASH = passwords._hasher.hash("not-a-real-password")


class LoginError(Exception):
    """Shown to the person logging in; never says whether the email exists."""


@dataclass(frozen=True)
class Session:
    user_id: int
    email: str
    name: str
    role: Role
    expires_at: datetime
    fingerprint: str = ""  # session_fingerprint of the user row at login

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


def session_ttl() -> timedelta:
    return timedelta(minutes=env_int("SESSION_TTL_MINUTES", 8 * 60))


def throttle_delay(failures: int, free: int) -> timedelta:
    """How long a source waits after its n-th consecutive failure: nothing for the first
    `free`, then 2, 4, 8 … seconds, never more than MAX_DELAY."""
    if failures <= free:
        return timedelta(0)
    return min(MAX_DELAY, timedelta(seconds=2 ** min(failures - free, 20)))


def source_keys(source: str, email: str) -> tuple[str, str]:
    """The throttle keys of one attempt: (source, email) and the source alone."""
    source = (source or "unknown")[:200]
    return f"{source}|{email.strip().lower()[:190]}", f"{source}|*"


def session_fingerprint(user: dict[str, Any]) -> str:
    """Changes when the password, the role or the active flag does (never shown, never stored)."""
    facts = f"{user['password_hash']}|{user['role']}|{bool(user['active'])}"
    return hashlib.sha256(facts.encode("utf-8")).hexdigest()


def open_session(user: dict[str, Any], now: datetime) -> Session:
    return Session(user["id"], user["email"], user["name"], user["role"], now + session_ttl(),
                   session_fingerprint(user))


def session_still_valid(conn: users.Conn, session: Session) -> bool:
    """The user still exists, is active, and has the password and role the session was opened with."""
    user = users.session_facts(conn, session.user_id)
    return user is not None and bool(user["active"]) and session_fingerprint(user) == session.fingerprint


def create_user(conn: users.Conn, email: str, name: str, role: Role, password: str) -> int:
    if role not in ("owner", "staff"):
        raise ValueError("role must be owner or staff")
    return users.insert_user(conn, email, name, role, passwords.hash_password(password))


def _wait_text(until: datetime, now: datetime) -> str:
    seconds = max(1, int((until - now).total_seconds() + 0.999))
    return f"{seconds} seconds" if seconds < 120 else f"{(seconds + 59) // 60} minutes"


def _record_failure(conn: users.Conn, keys: tuple[str, str], now: datetime) -> None:
    since = now - FAILURE_MEMORY
    for key, free in zip(keys, (FREE_FAILURES_PER_EMAIL, FREE_FAILURES_PER_SOURCE), strict=True):
        failures = login_throttle.failures_since(conn, key, since) + 1
        delay = throttle_delay(failures, free)
        login_throttle.record_failure(conn, key, failures, now, now + delay if delay else None)
    login_throttle.forget_older_than(conn, since)


def login(conn: users.Conn, email: str, password: str, now: datetime | None = None,
          source: str = "unknown") -> Session:
    """A session for the right password of an active account; LoginError otherwise.

    `source` is where the attempt comes from (the client's address); a source that keeps
    failing waits before its next attempt is even checked.
    """
    now = now or datetime.now(timezone.utc)
    keys = source_keys(source, email)
    blocked = login_throttle.blocked_until(conn, list(keys), now)
    if blocked is not None:
        raise LoginError(f"Too many failed attempts from this device. Try again in {_wait_text(blocked, now)}.")
    user = users.find_by_email(conn, email)
    if user is None:
        passwords.verify_password(_DUMMY_HASH, password)
        good = False
    else:
        good = passwords.verify_password(user["password_hash"], password) and bool(user["active"])
    if user is None or not good:
        if user is not None:
            users.record_failure(conn, user["id"], int(user["failed_logins"]) + 1, None)
        _record_failure(conn, keys, now)
        conn.commit()  # the failure must count even though we raise
        raise LoginError(FAILURE_MESSAGE)
    rehash = passwords.hash_password(password) if passwords.needs_rehash(user["password_hash"]) else None
    users.record_success(conn, user["id"], rehash)
    login_throttle.clear(conn, [keys[0]])
    if rehash is not None:
        user = {**user, "password_hash": rehash}
    return open_session(user, now)
