"""The Collect screen's one read: an invoice, what is still due, its customer, and the latest
payment, decline, bank debit and text. Read every second while the screen is open, so it is
one statement over indexed lookups."""

from __future__ import annotations

from typing import Any

from db.pool import Conn


def collect_view(conn: Conn, invoice_id: int) -> dict[str, Any] | None:
    return conn.execute(
        """
        SELECT i.id, i.status, i.stripe_invoice_number, i.hosted_invoice_url, i.currency, i.mode,
               i.amount_due_cents, i.amount_paid_cents,
               i.amount_due_cents - i.amount_paid_cents AS amount_remaining_cents,
               i.paid_at, i.processing_payment_intent_id IS NOT NULL AS processing, i.job_id,
               c.id AS customer_id, c.name AS customer_name, c.email AS customer_email, c.phone AS customer_phone,
               c.texts_off, c.texts_off_reason,
               p.amount_cents AS last_payment_cents, p.paid_at AS last_payment_at,
               p.stripe_charge_id AS last_charge_id, p.stripe_payment_intent_id AS last_payment_intent_id,
               f.message AS decline_message, f.decline_code, f.code AS decline_error_code, f.failed_at,
               t.status AS text_status, t.to_number AS text_to, t.error_message AS text_error,
               t.created_at AS text_at
          FROM crm.invoices i
          JOIN crm.customers c ON c.id = i.customer_id
          LEFT JOIN LATERAL (SELECT * FROM crm.payments p WHERE p.invoice_id = i.id
                              ORDER BY p.paid_at DESC, p.id DESC LIMIT 1) p ON true
          LEFT JOIN LATERAL (SELECT * FROM crm.payment_failures f WHERE f.invoice_id = i.id
                              ORDER BY f.failed_at DESC, f.id DESC LIMIT 1) f ON true
          LEFT JOIN LATERAL (SELECT * FROM crm.text_messages t WHERE t.invoice_id = i.id
                              ORDER BY t.created_at DESC, t.id DESC LIMIT 1) t ON true
         WHERE i.id = %s
        """,
        (invoice_id,),
    ).fetchone()


def next_job(conn: Conn, after_job_id: int | None) -> dict[str, Any] | None:
    """The next job to go to: scheduled or in progress, soonest first, not the one just done."""
    return conn.execute(
        "SELECT j.id, j.title, j.scheduled_for, c.name AS customer_name FROM crm.jobs j "
        "JOIN crm.customers c ON c.id = j.customer_id "
        "WHERE j.status IN ('scheduled', 'in_progress') AND j.id IS DISTINCT FROM %s "
        "ORDER BY j.scheduled_for NULLS LAST, j.id LIMIT 1",
        (after_job_id,),
    ).fetchone()
