"""Named queries for the record of each Send attempt (crm.send_steps) and the installation id."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]
Row = dict[str, Any]
INSTALL_ID_KEY = "system.install_id"


def install_id(conn: Conn) -> str:
    """This database's id, created once (the migration makes it; a wiped settings table remakes it)."""
    conn.execute("INSERT INTO crm.settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                 (INSTALL_ID_KEY, Jsonb(uuid.uuid4().hex)))
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT value FROM crm.settings WHERE key = %s", (INSTALL_ID_KEY,)).fetchone()
    assert row is not None
    return str(row["value"])


def start(conn: Conn, invoice_id: int, attempt: int, step: str, idempotency_key: str | None) -> int:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO crm.send_steps (invoice_id, attempt, step, status, idempotency_key) "
            "VALUES (%s, %s, %s, 'started', %s) RETURNING id", (invoice_id, attempt, step, idempotency_key)).fetchone()
    assert row is not None
    return int(row["id"])


def finish(conn: Conn, step_id: int, status: str, *, external_id: str | None = None, error: str | None = None,
           idempotency_key: str | None = None) -> None:
    conn.execute(
        "UPDATE crm.send_steps SET status = %s, external_id = %s, error = %s, "
        "idempotency_key = coalesce(%s, idempotency_key), finished_at = now() WHERE id = %s",
        (status, external_id, error, idempotency_key, step_id))


def last_failure(conn: Conn, invoice_id: int) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT attempt, step, error, finished_at FROM crm.send_steps "
            "WHERE invoice_id = %s AND status = 'failed' ORDER BY id DESC LIMIT 1", (invoice_id,)).fetchone()
