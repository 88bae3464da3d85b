"""What an owner does to dashboard users: add, disable or enable, reset a password.

Each change and its audit row commit together; the last active owner can never be
disabled (nobody would be left to reach the owner pages).
"""

from __future__ import annotations

from typing import Any

from crm.users.auth import create_user
from crm.users.passwords import hash_password
from db import audit, users


class UserAdminError(ValueError):
    """A change the rules refuse; the message is for the owner."""


def _audit(conn: users.Conn, user_id: int, before: str | None, after: str | None, actor: str,
           detail: dict[str, Any]) -> None:
    audit.write(conn, "user", user_id, before, after, actor, detail)


def add_user(conn: users.Conn, actor: str, email: str, name: str, role: str, password: str) -> int:
    user_id = create_user(conn, email, name, role, password)
    _audit(conn, user_id, None, "active", actor, {"email": email.strip().lower(), "role": role})
    return user_id


def set_user_active(conn: users.Conn, actor: str, user_id: int, active: bool) -> None:
    row = users.lock_user(conn, user_id)
    if row is None:
        raise UserAdminError(f"There is no user #{user_id}.")
    if row["active"] == active:
        return
    if not active and row["role"] == "owner" and users.count_owners(conn) <= 1:
        raise UserAdminError("The last active owner cannot be disabled.")
    users.set_active(conn, user_id, active)
    _audit(conn, user_id, "disabled" if active else "active", "active" if active else "disabled", actor,
           {"email": row["email"]})


def reset_password(conn: users.Conn, actor: str, user_id: int, password: str) -> None:
    """Raises WeakPasswordError for a short password; the audit row never holds the password."""
    users.set_password(conn, user_id, hash_password(password))
    _audit(conn, user_id, None, None, actor, {"change": "password reset; the user's open sessions end"})
