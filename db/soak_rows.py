"""Named queries for the soak run (ops/soak.py): the rows it pays against, and what it counts after."""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def insert_customer(conn: Conn) -> int:
    row = conn.execute(
        "INSERT INTO crm.customers (name, email) VALUES ('Soak Customer', 'soak@example.com') RETURNING id").fetchone()
    assert row is not None
    return int(row["id"])


def insert_open_invoice(conn: Conn, customer_id: int, amount: int, stripe_invoice_id: str, *, reminder: bool) -> int:
    """A job and its open invoice, as a Send leaves it; with a reminder already queued when asked."""
    job = conn.execute("INSERT INTO crm.jobs (customer_id, title, status) VALUES (%s, 'Soak job', 'in_progress') "
                       "RETURNING id", (customer_id,)).fetchone()
    assert job is not None
    row = conn.execute(
        "INSERT INTO crm.invoices (job_id, customer_id, status, amount_due_cents, due_date, mode, "
        "stripe_invoice_id, sent_at) VALUES (%s, %s, 'open', %s, current_date + 14, 'test', %s, now()) "
        "RETURNING id", (job["id"], customer_id, amount, stripe_invoice_id)).fetchone()
    assert row is not None
    if reminder:
        conn.execute("INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at, status, queued_at) "
                     "VALUES (%s, 1, 7, now() + interval '2 hours', 'queued', now())", (row["id"],))
    return int(row["id"])


def queued_reminders_of_open_invoices(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) AS n FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id "
                       "WHERE r.status = 'queued' AND i.status = 'open'").fetchone()
    assert row is not None
    return int(row["n"])


def ledger(conn: Conn) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in conn.execute("SELECT id, outcome, duplicate_deliveries FROM crm.stripe_events")}


def double_applied(conn: Conn) -> int:
    """Invoices paid twice over: two audited moves to paid, or payments above the amount due."""
    row = conn.execute("""
        SELECT count(*) AS n FROM crm.invoices i
        WHERE (SELECT count(*) FROM crm.audit_log a WHERE a.entity = 'invoice' AND a.entity_id = i.id
                AND a.to_status = 'paid' AND a.from_status <> 'paid') > 1
           OR (SELECT coalesce(sum(amount_cents), 0) FROM crm.payments p WHERE p.invoice_id = i.id) > i.amount_due_cents
        """).fetchone()
    assert row is not None
    return int(row["n"])
