"""Named queries for reminders (crm.reminders)."""

from __future__ import annotations

from typing import Any

import psycopg

from crm.reminder_schedule import PlannedReminder

Conn = psycopg.Connection[Any]


def insert_planned(conn: Conn, invoice_id: int, planned: list[PlannedReminder], opted_out: bool = False) -> int:
    """Create an invoice's reminder rows once (a resumed Send inserts nothing new).

    A customer who opted out still gets the rows, cancelled, so the timeline says why
    no reminder went out.
    """
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at, status, cancel_reason, "
            "cancelled_at) VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) "
            "ON CONFLICT (invoice_id, offset_days) DO NOTHING",
            [
                (invoice_id, p.sequence, p.offset_days, p.send_at,
                 "cancelled" if opted_out else "pending", "opted_out" if opted_out else None, opted_out)
                for p in planned
            ],
        )
        return cur.rowcount
