"""Dashboard sessions that survive a browser reload: a random token in an httpOnly cookie,
stored only as its hash (db/dashboard_sessions.py), traded for a one-time code made at login.

Logout ends the stored session at once; a disabled account or a changed password or role ends
it at the next click (crm.users.auth.session_fingerprint). `open_code`, `trade` and `resume` are the
three steps; `cookie_header` and `clear_header` are what the /auth routes answer.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from crm.users.auth import Session, session_fingerprint, session_ttl
from db import dashboard_sessions as store
from db.users import Conn

COOKIE = "crm_session"
CODE_TTL = timedelta(seconds=60)


def digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def open_code(conn: Conn, session: Session, now: datetime) -> tuple[int, str]:
    """A stored session for a fresh login and the one-time code the browser trades for its cookie."""
    code = secrets.token_urlsafe(32)
    session_id = store.open_with_code(conn, session.user_id, session.fingerprint, digest(code), now + CODE_TTL,
                                      session.expires_at)
    return session_id, code


def trade(conn: Conn, code: str, now: datetime) -> str | None:
    """The cookie's token for a one-time code, or None (unknown, used, expired or ended)."""
    if not code or len(code) > 100:
        return None
    token = secrets.token_urlsafe(32)
    return token if store.trade_code(conn, digest(code), digest(token), now) else None


def resume(conn: Conn, token: str | None, now: datetime) -> Session | None:
    """The session a reloaded page's cookie stands for, if it is still open and its user unchanged."""
    if not token or len(token) > 100:
        return None
    row = store.find_by_token(conn, digest(token), now)
    if row is None:
        return None
    if not row["active"] or session_fingerprint(row) != row["fingerprint"]:
        store.end(conn, int(row["session_id"]))
        return None
    return Session(int(row["id"]), row["email"], row["name"], row["role"], row["expires_at"], row["fingerprint"],
                   server_id=int(row["session_id"]))


def cookie_header(token: str, secure: bool) -> str:
    """httpOnly (no script reads it), SameSite=Lax, the whole site, as long as a session lasts."""
    max_age = int(session_ttl().total_seconds())
    return (f"{COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
            + ("; Secure" if secure else ""))


def clear_header(secure: bool) -> str:
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")


def still_live(conn: Conn, server_id: int, now: datetime) -> bool:
    """The stored session behind a cookie has not been ended (logout, expiry)."""
    return bool(store.is_live(conn, server_id, now))


def end(conn: Conn, server_id: int) -> None:
    """End the stored session: its cookie opens nothing anywhere from now on."""
    store.end(conn, server_id)
