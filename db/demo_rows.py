"""Named inserts for the demo business (ops/seed.py decides what the rows say; this writes them).

Rows carry their own times (created_at, sent_at, paid_at...) so the dashboard shows months of
history; the demo's invoices are flagged `demo`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def _id(row: Any) -> int:
    assert row is not None
    return int(row["id"] if isinstance(row, dict) else row[0])


def claim_first_load(conn: Conn, marker: str) -> bool:
    """Serialises loaders; False when the demo is already there (the marker setting is set)."""
    conn.execute("SELECT pg_advisory_xact_lock(7302113002)")
    return conn.execute("SELECT 1 FROM crm.settings WHERE key = %s", (marker,)).fetchone() is None


def mark_loaded(conn: Conn, marker: str, now: datetime) -> None:
    conn.execute("INSERT INTO crm.settings (key, value) VALUES (%s, %s::jsonb)", (marker, json.dumps(now.isoformat())))


def insert_customer(conn: Conn, name: str, email: str | None, phone: str | None, address: str | None,
                    opt_out: bool, created_at: datetime) -> int:
    return _id(conn.execute(
        "INSERT INTO crm.customers (name, email, phone, address, reminders_opt_out, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (name, email, phone, address, opt_out, created_at)).fetchone())


def insert_job(conn: Conn, customer_id: int, title: str, status: str, scheduled_for: datetime,
               completed_at: datetime | None, created_at: datetime) -> int:
    return _id(conn.execute(
        "INSERT INTO crm.jobs (customer_id, title, status, scheduled_for, completed_at, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (customer_id, title, status, scheduled_for, completed_at, created_at)).fetchone())


def set_job_completed_by(conn: Conn, job_id: int, event_id: str) -> None:
    conn.execute("UPDATE crm.jobs SET completed_by_event_id = %s WHERE id = %s", (event_id, job_id))


def insert_invoice(conn: Conn, values: tuple[Any, ...]) -> int:
    """values: job_id, customer_id, kind, status, amount_due_cents, amount_paid_cents, due_date, mode,
    stripe_invoice_id, stripe_invoice_number, hosted_invoice_url, sent_at, paid_at, voided_at, created_at."""
    return _id(conn.execute(
        "INSERT INTO crm.invoices (job_id, customer_id, kind, status, amount_due_cents, amount_paid_cents, "
        "due_date, mode, stripe_invoice_id, stripe_invoice_number, hosted_invoice_url, sent_at, paid_at, "
        "voided_at, created_at, demo) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s, true) RETURNING id",
        values).fetchone())


def insert_lines(conn: Conn, invoice_id: int, lines: list[tuple[str, int, int]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(invoice_id, i, d, q, u) for i, (d, q, u) in enumerate(lines)])


def insert_invoice_email(conn: Conn, values: tuple[Any, ...]) -> None:
    """values: invoice_id, resend_id, idempotency_key, to_address, subject, sent_at, delivered_at,
    first_opened_at, first_clicked_at, open_count, click_count, created_at."""
    conn.execute(
        "INSERT INTO crm.email_messages (kind, invoice_id, resend_id, idempotency_key, from_address, to_address, "
        "subject, status, sent_at, delivered_at, first_opened_at, first_clicked_at, open_count, click_count, "
        "created_at) VALUES ('invoice', %s, %s, %s, 'billing@example.com', %s, %s, 'delivered', %s, %s, %s, %s, "
        "%s, %s, %s)", values)


def insert_paid(conn: Conn, invoice_id: int, payment_id: str, event_id: str, stripe_invoice_id: str | None,
                amount: int, fee: int, paid_at: datetime) -> None:
    """The payment and the ledger row of the invoice.paid event that recorded it."""
    conn.execute(
        "INSERT INTO crm.payments (invoice_id, mode, stripe_payment_id, stripe_event_id, amount_cents, "
        "fee_cents, net_cents, currency, paid_at) VALUES (%s, 'test', %s, %s, %s, %s, %s, 'usd', %s)",
        (invoice_id, payment_id, event_id, amount, fee, amount - fee, paid_at))
    conn.execute(
        "INSERT INTO crm.stripe_events (id, type, mode, object_id, invoice_id, outcome, stripe_created_at, "
        "received_at, payload) VALUES (%s, 'invoice.paid', 'test', %s, %s, 'applied', %s, %s, %s::jsonb)",
        (event_id, stripe_invoice_id, invoice_id, paid_at, paid_at, json.dumps({"demo": True})))


def insert_reminder(conn: Conn, invoice_id: int, sequence: int, offset_days: int, send_at: datetime, status: str,
                    resend_id: str | None, cancel_reason: str | None, sent_at: datetime | None,
                    cancelled_at: datetime | date | None) -> None:
    conn.execute(
        "INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at, status, resend_id, "
        "cancel_reason, sent_at, cancelled_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (invoice_id, sequence, offset_days, send_at, status, resend_id, cancel_reason, sent_at, cancelled_at))
