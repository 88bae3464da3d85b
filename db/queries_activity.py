"""Read queries for the Activity page and the Settings health panel: Stripe events,
emails and their events, reminders, background workers, last webhook arrivals.

'duplicate' is not an outcome of its own: it is an event delivered more than once
(duplicate_deliveries > 0), whatever its outcome was.
"""

from __future__ import annotations

from typing import Any

from db.pool import Conn
from db.reminders import queue_job_state

STRIPE_OUTCOMES = ("applied", "duplicate", "ignored", "unmatched", "rejected")
EMAIL_KINDS = ("invoice", "reminder", "statement", "test")
REMINDER_STATUSES = ("pending", "queued", "scheduled", "sent", "cancelled")


def stripe_events(conn: Conn, outcome: str | None = None, type_prefix: str = "", limit: int = 100,
                  offset: int = 0) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT s.received_at, s.id, s.type, s.mode, s.outcome, s.duplicate_deliveries, s.source, s.invoice_id,
               s.object_id, s.detail, s.replayed_at AS applied_late_at,
               (SELECT coalesce(i.stripe_invoice_number, 'draft #' || i.id) FROM crm.invoices i
                 WHERE i.id = s.invoice_id) AS invoice
        FROM crm.stripe_events s
        WHERE (%(outcome)s::text IS NULL
               OR (%(outcome)s = 'duplicate' AND s.duplicate_deliveries > 0)
               OR s.outcome = %(outcome)s)
          AND (%(type)s = '' OR s.type LIKE %(type)s || '%%')
        ORDER BY s.received_at DESC, s.id
        LIMIT %(limit)s OFFSET %(offset)s
        """,
        {"outcome": outcome, "type": type_prefix.strip(), "limit": limit, "offset": offset},
    ).fetchall()


def declines(conn: Conn, limit: int = 100) -> list[dict[str, Any]]:
    """Declined payment attempts with Stripe's reason (the payment intent's last_payment_error)."""
    return conn.execute(
        """
        SELECT f.failed_at, f.invoice_id, coalesce(i.stripe_invoice_number, '#' || i.id) AS invoice, c.name AS customer,
               f.code, f.decline_code, f.message, f.stripe_payment_intent_id AS payment_intent, f.mode
        FROM crm.payment_failures f JOIN crm.invoices i ON i.id = f.invoice_id
        JOIN crm.customers c ON c.id = i.customer_id
        ORDER BY f.failed_at DESC, f.id DESC LIMIT %(limit)s
        """,
        {"limit": limit},
    ).fetchall()


def emails(conn: Conn, kind: str | None = None, status: str | None = None, limit: int = 100,
           offset: int = 0) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT m.created_at, m.id, m.kind, m.invoice_id, m.to_address, m.subject, m.status, m.sent_at,
               m.delivered_at, m.first_opened_at, m.first_clicked_at, m.open_count, m.click_count, m.error,
               (SELECT count(*) FROM crm.email_events e WHERE e.email_message_id = m.id) AS events,
               (SELECT coalesce(i.stripe_invoice_number, 'draft #' || i.id) FROM crm.invoices i
                 WHERE i.id = m.invoice_id) AS invoice
        FROM crm.email_messages m
        WHERE (%(kind)s::text IS NULL OR m.kind = %(kind)s) AND (%(status)s::text IS NULL OR m.status = %(status)s)
        ORDER BY m.created_at DESC  -- email_messages_created_idx; ties in any order
        LIMIT %(limit)s OFFSET %(offset)s
        """,
        {"kind": kind, "status": status, "limit": limit, "offset": offset},
    ).fetchall()


def email_events(conn: Conn, limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT e.occurred_at, e.type, e.resend_id, m.kind, m.invoice_id, m.to_address, e.id, "
        "(SELECT coalesce(i.stripe_invoice_number, 'draft #' || i.id) FROM crm.invoices i WHERE i.id = m.invoice_id) "
        "AS invoice "
        "FROM crm.email_events e LEFT JOIN crm.email_messages m ON m.id = e.email_message_id "
        "ORDER BY e.received_at DESC LIMIT %s",
        (limit,),
    ).fetchall()


def reminders(conn: Conn, status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Reminders by when they are (or were) due to go out, latest first."""
    return conn.execute(
        """
        SELECT r.send_at, r.id, r.invoice_id, coalesce(i.stripe_invoice_number, 'draft #' || i.id) AS invoice,
               c.name AS customer, r.sequence, r.offset_days, r.status,
               r.cancel_reason, r.resend_cancel, r.attempts, r.last_error, r.sent_at, r.cancelled_at
        FROM crm.reminders r
        JOIN crm.invoices i ON i.id = r.invoice_id JOIN crm.customers c ON c.id = i.customer_id
        WHERE %(status)s::text IS NULL OR r.status = %(status)s
        ORDER BY r.send_at DESC, r.id DESC
        LIMIT %(limit)s OFFSET %(offset)s
        """,
        {"status": status, "limit": limit, "offset": offset},
    ).fetchall()


def health(conn: Conn) -> dict[str, Any]:
    """When webhooks last arrived, by source and mode, what the workers last did, and the state
    of pg_cron's queue job (db.reminders.queue_job_state)."""
    row = conn.execute(
        """
        SELECT (SELECT max(received_at) FROM crm.stripe_events WHERE source = 'webhook' AND mode = 'test')
                   AS last_stripe_test,
               (SELECT max(received_at) FROM crm.stripe_events WHERE source = 'webhook' AND mode = 'live')
                   AS last_stripe_live,
               (SELECT max(received_at) FROM crm.email_events) AS last_resend
        """
    ).fetchone()
    assert row is not None
    workers = conn.execute(
        "SELECT worker, last_run_at, last_ok_at, last_error FROM crm.worker_runs ORDER BY worker"
    ).fetchall()
    return {**row, "workers": workers, "queue_job": queue_job_state(conn)}
