"""Named queries for Resend webhook events (crm.email_events) and what they change.

`apply_resend_event` is the one call per verified webhook: the svix-id insert is the dedup
ledger, and email status, open/click counts, the invoice's bounce flag and the reminder's
sent status commit with it (crm.apply_resend_event in db/migrations/0005_reminders.sql).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def apply_resend_event(conn: Conn, svix_id: str, event_type: str, resend_id: str | None,
                       occurred_at: datetime, payload: dict[str, Any]) -> str:
    """'applied', 'duplicate' (this svix-id was recorded before) or 'unmatched' (unknown email, kept)."""
    row = conn.execute("SELECT crm.apply_resend_event(%s, %s, %s, %s, %s)",
                       (svix_id, event_type, resend_id, occurred_at, Jsonb(payload))).fetchone()
    assert row is not None
    value = next(iter(row.values())) if isinstance(row, dict) else row[0]
    return str(value)
