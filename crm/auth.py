"""Dashboard login: password check, lockout after repeated failures, roles.

`lockout_after` and `lockout_for` decide; the database functions only record. The
dashboard keeps the returned `Session` with an expiry and checks it on every page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from crm import passwords
from db import users
from db.config import env_int

Role = str  # 'owner' | 'staff'
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
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

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


def session_ttl() -> timedelta:
    return timedelta(minutes=env_int("SESSION_TTL_MINUTES", 8 * 60))


def lockout_after(failures: int, now: datetime) -> datetime | None:
    """When the account unlocks after this many consecutive failures (None: not locked)."""
    return now + LOCKOUT if failures >= MAX_FAILURES else None


def create_user(conn: users.Conn, email: str, name: str, role: Role, password: str) -> int:
    if role not in ("owner", "staff"):
        raise ValueError("role must be owner or staff")
    return users.insert_user(conn, email, name, role, passwords.hash_password(password))


def login(conn: users.Conn, email: str, password: str, now: datetime | None = None) -> Session:
    now = now or datetime.now(timezone.utc)
    user = users.find_by_email(conn, email)
    if user is None:
        passwords.verify_password(_DUMMY_HASH, password)
        raise LoginError("Wrong email or password.")
    if user["locked_until"] is not None and user["locked_until"] > now:
        raise LoginError("Too many failed attempts. Try again in a few minutes.")
    if not passwords.verify_password(user["password_hash"], password):
        failures = int(user["failed_logins"]) + 1
        users.record_failure(conn, user["id"], failures, lockout_after(failures, now))
        conn.commit()  # the failure must count even though we raise
        raise LoginError("Wrong email or password.")
    if not user["active"]:
        raise LoginError("This account is disabled. Ask the owner.")
    rehash = passwords.hash_password(password) if passwords.needs_rehash(user["password_hash"]) else None
    users.record_success(conn, user["id"], rehash)
    return Session(user["id"], user["email"], user["name"], user["role"], now + session_ttl())
