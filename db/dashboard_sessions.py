"""Named queries for dashboard sessions kept across reloads (crm.dashboard_sessions).

Only hashes of the one-time code and of the cookie's token are stored (crm.web_sessions).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def open_with_code(conn: Conn, user_id: int, fingerprint: str, code_hash: bytes, code_expires_at: datetime,
                   expires_at: datetime) -> int:
    row = conn.execute(
        "INSERT INTO crm.dashboard_sessions (user_id, fingerprint, code_hash, code_expires_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (user_id, fingerprint, code_hash, code_expires_at, expires_at)).fetchone()
    assert row is not None
    return int(row["id"] if isinstance(row, dict) else row[0])


def trade_code(conn: Conn, code_hash: bytes, token_hash: bytes, now: datetime) -> bool:
    """The one-time code becomes the cookie's token, once, within its minute."""
    cur = conn.execute(
        "UPDATE crm.dashboard_sessions SET token_hash = %s, code_hash = NULL, code_expires_at = NULL "
        "WHERE code_hash = %s AND code_expires_at > %s AND ended_at IS NULL AND expires_at > %s",
        (token_hash, code_hash, now, now))
    return cur.rowcount == 1


def find_by_token(conn: Conn, token_hash: bytes, now: datetime) -> dict[str, Any] | None:
    """The live session behind a cookie with its user's row (for the fingerprint check)."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT s.id AS session_id, s.fingerprint, s.expires_at, u.id, u.email, u.name, u.role, u.password_hash, "
        "u.active FROM crm.dashboard_sessions s JOIN crm.app_users u ON u.id = s.user_id "
        "WHERE s.token_hash = %s AND s.ended_at IS NULL AND s.expires_at > %s",
        (token_hash, now)).fetchone()


def is_live(conn: Conn, session_id: int, now: datetime) -> bool:
    row = conn.execute("SELECT 1 FROM crm.dashboard_sessions WHERE id = %s AND ended_at IS NULL AND expires_at > %s",
                       (session_id, now)).fetchone()
    return row is not None


def end(conn: Conn, session_id: int) -> None:
    conn.execute("UPDATE crm.dashboard_sessions SET ended_at = now() WHERE id = %s AND ended_at IS NULL",
                 (session_id,))
