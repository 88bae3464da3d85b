"""Named queries for customer statements: a customer's open invoices, and the statement
email recorded on the customer's timeline (crm.email_messages kind 'statement' + an audit row).
"""

from __future__ import annotations

from typing import Any

from db import audit
from db.pool import Conn


def customer(conn: Conn, customer_id: int) -> dict[str, Any] | None:
    return conn.execute("SELECT id, name, email, address FROM crm.customers WHERE id = %s", (customer_id,)).fetchone()


def open_invoices(conn: Conn, customer_id: int, mode: str) -> list[dict[str, Any]]:
    """The customer's open invoices in one Stripe mode, oldest due first, with what is left to pay."""
    return conn.execute(
        """
        SELECT i.id, coalesce(i.stripe_invoice_number, 'draft #' || i.id) AS number, i.currency,
               i.amount_due_cents, i.amount_paid_cents, i.amount_due_cents - i.amount_paid_cents AS balance_cents,
               i.due_date, i.sent_at, i.hosted_invoice_url, i.demo, j.title AS job_title
        FROM crm.invoices i JOIN crm.jobs j ON j.id = i.job_id
        WHERE i.customer_id = %s AND i.status = 'open' AND i.mode = %s
        ORDER BY i.due_date NULLS LAST, i.id
        """,
        (customer_id, mode),
    ).fetchall()


def sent_statement(conn: Conn, idempotency_key: str) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT id, resend_id, status, sent_at FROM crm.email_messages "
        "WHERE idempotency_key = %s AND kind = 'statement'",
        (idempotency_key,),
    ).fetchone()


def record_sent(conn: Conn, *, customer_id: int, resend_id: str, idempotency_key: str, from_address: str,
                to_address: str, subject: str, actor: str, detail: dict[str, Any]) -> int:
    """The statement Resend accepted, and its audit row, in one transaction."""
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO crm.email_messages (kind, customer_id, resend_id, idempotency_key, from_address, to_address, "
            "subject, status, sent_at) VALUES ('statement', %s, %s, %s, %s, %s, %s, 'sent', now()) "
            "ON CONFLICT (idempotency_key) DO UPDATE SET resend_id = EXCLUDED.resend_id, status = 'sent', "
            "error = NULL, sent_at = coalesce(crm.email_messages.sent_at, now()) RETURNING id",
            (customer_id, resend_id, idempotency_key, from_address, to_address, subject)).fetchone()
        assert row is not None
        message_id = int(row["id"])
        audit.write(conn, "customer", customer_id, None, "statement_sent", actor,
                    {**detail, "email_message_id": message_id, "resend_id": resend_id})
    return message_id


def record_failed(conn: Conn, *, customer_id: int, idempotency_key: str, from_address: str, to_address: str,
                  subject: str, error: str) -> None:
    conn.execute(
        "INSERT INTO crm.email_messages (kind, customer_id, idempotency_key, from_address, to_address, subject, "
        "status, error) VALUES ('statement', %s, %s, %s, %s, %s, 'failed', %s) "
        "ON CONFLICT (idempotency_key) DO UPDATE SET status = 'failed', error = EXCLUDED.error",
        (customer_id, idempotency_key, from_address, to_address, subject, error[:2000]))
