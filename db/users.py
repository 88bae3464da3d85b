"""Named queries for dashboard users (crm.app_users)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def insert_user(conn: Conn, email: str, name: str, role: str, password_hash: str) -> int:
    row = conn.execute(
        "INSERT INTO crm.app_users (email, name, role, password_hash) VALUES (%s, %s, %s, %s) RETURNING id",
        (email.strip().lower(), name.strip(), role, password_hash),
    ).fetchone()
    assert row is not None
    return int(row["id"] if isinstance(row, dict) else row[0])


def find_by_email(conn: Conn, email: str) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT id, email, name, role, password_hash, active, failed_logins, locked_until "
        "FROM crm.app_users WHERE lower(email) = lower(%s) FOR UPDATE",
        (email.strip(),),
    ).fetchone()


def session_facts(conn: Conn, user_id: int) -> dict[str, Any] | None:
    """What an open session is checked against on every rerun (crm.auth.session_still_valid)."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT id, email, name, role, password_hash, active FROM crm.app_users WHERE id = %s", (user_id,)
    ).fetchone()


def list_users(conn: Conn) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT id, email, name, role, active, failed_logins, locked_until, last_login_at, created_at "
        "FROM crm.app_users ORDER BY lower(email)"
    ).fetchall()


def record_failure(conn: Conn, user_id: int, failed_logins: int, locked_until: datetime | None) -> None:
    conn.execute(
        "UPDATE crm.app_users SET failed_logins = %s, locked_until = %s WHERE id = %s",
        (failed_logins, locked_until, user_id),
    )


def record_success(conn: Conn, user_id: int, new_hash: str | None = None) -> None:
    conn.execute(
        "UPDATE crm.app_users SET failed_logins = 0, locked_until = NULL, last_login_at = now(), "
        "password_hash = coalesce(%s, password_hash) WHERE id = %s",
        (new_hash, user_id),
    )


def set_password(conn: Conn, user_id: int, password_hash: str) -> None:
    conn.execute(
        "UPDATE crm.app_users SET password_hash = %s, failed_logins = 0, locked_until = NULL WHERE id = %s",
        (password_hash, user_id),
    )


def lock_user(conn: Conn, user_id: int) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT email, role, active FROM crm.app_users WHERE id = %s FOR UPDATE", (user_id,)).fetchone()


def set_active(conn: Conn, user_id: int, active: bool) -> None:
    conn.execute("UPDATE crm.app_users SET active = %s WHERE id = %s", (active, user_id))


def count_owners(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM crm.app_users WHERE role = 'owner' AND active").fetchone()
    assert row is not None
    return int(row["count"] if isinstance(row, dict) else row[0])
