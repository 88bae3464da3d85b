"""Named queries for login throttling (crm.login_throttle): failures per source key.

The rule (how many failures, how long a delay) is crm/users/auth.py's; these only record and read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Conn = psycopg.Connection[Any]


def blocked_until(conn: Conn, keys: list[str], now: datetime) -> datetime | None:
    """The latest time until which any of these keys is blocked, if one is blocked now."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT max(blocked_until) AS until FROM crm.login_throttle "
        "WHERE source_key = ANY(%s) AND blocked_until > %s",
        (keys, now),
    ).fetchone()
    return row["until"] if row else None


def failures_since(conn: Conn, key: str, since: datetime) -> int:
    """Consecutive failures recorded for the key, counting only a run that is still recent."""
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT failures FROM crm.login_throttle WHERE source_key = %s AND last_failure_at > %s FOR UPDATE",
        (key, since),
    ).fetchone()
    return int(row["failures"]) if row else 0


def record_failure(conn: Conn, key: str, failures: int, now: datetime, blocked_until: datetime | None) -> None:
    conn.execute(
        "INSERT INTO crm.login_throttle (source_key, failures, last_failure_at, blocked_until) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (source_key) DO UPDATE SET failures = EXCLUDED.failures, "
        "last_failure_at = EXCLUDED.last_failure_at, blocked_until = EXCLUDED.blocked_until",
        (key, failures, now, blocked_until),
    )


def clear(conn: Conn, keys: list[str]) -> None:
    conn.execute("DELETE FROM crm.login_throttle WHERE source_key = ANY(%s)", (keys,))


def forget_older_than(conn: Conn, before: datetime) -> None:
    conn.execute("DELETE FROM crm.login_throttle WHERE last_failure_at < %s", (before,))
