"""Named queries for stored settings and encrypted secrets (crm.settings, crm.secrets).

The rules (what each setting is, its default, the environment overrides, encryption) are in
crm/config/settings.py and crm/config/secrets_store.py; this module only reads and writes the rows.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import tuple_row

Conn = psycopg.Connection[Any]


def stored_values(conn: Conn) -> dict[str, Any]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return dict(cur.execute("SELECT key, value FROM crm.settings").fetchall())


def stored_ciphertexts(conn: Conn) -> dict[str, bytes]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return dict(cur.execute("SELECT name, ciphertext FROM crm.secrets").fetchall())


def secret_hints(conn: Conn) -> dict[str, str]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return dict(cur.execute("SELECT name, hint FROM crm.secrets").fetchall())


_SAVE_VALUE = """
INSERT INTO crm.settings (key, value, updated_by) VALUES (%s, %s::jsonb, %s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now()
"""

_SAVE_SECRET = """
INSERT INTO crm.secrets (name, ciphertext, hint, updated_by) VALUES (%s, %s, %s, %s)
ON CONFLICT (name) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, hint = EXCLUDED.hint,
    updated_by = EXCLUDED.updated_by, updated_at = now()
"""


def save_value(conn: Conn, key: str, value: Any, user_id: int | None) -> None:
    conn.execute(_SAVE_VALUE, (key, json.dumps(value), user_id))


def save_secret(conn: Conn, name: str, ciphertext: bytes, hint: str, user_id: int | None) -> None:
    conn.execute(_SAVE_SECRET, (name, ciphertext, hint, user_id))


def lock_ciphertexts(conn: Conn) -> list[tuple[str, bytes]]:
    """Every stored secret, locked for the rest of the transaction (key rotation)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute("SELECT name, ciphertext FROM crm.secrets ORDER BY name FOR UPDATE").fetchall()
    return [(name, bytes(ciphertext)) for name, ciphertext in rows]


def replace_ciphertext(conn: Conn, name: str, ciphertext: bytes) -> None:
    conn.execute("UPDATE crm.secrets SET ciphertext = %s, updated_at = now() WHERE name = %s", (ciphertext, name))
