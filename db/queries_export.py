"""Named queries for the accountant's export: what happened in a date range, row by row.

Windows are half-open [since, until) timestamps (the caller cuts them at the business's
local midnights). Money stays integer minor units here; crm/money/accounting_export.py formats it.
Disputes come from crm.disputes where that table exists (it arrives with the bank
debits and disputes work); without it the export has no dispute rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from db.pool import Conn


def invoice_lines(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every line of the invoices sent in the window (open, paid or written off; not void)."""
    return conn.execute(
        """
        SELECT i.id AS invoice_id, coalesce(i.stripe_invoice_number, 'CRM-' || i.id) AS number, c.name AS customer,
               i.sent_at, i.due_date, i.currency, i.status, j.title AS job_title,
               l.position, l.description, l.quantity, l.unit_amount_cents, l.amount_cents
        FROM crm.invoices i
        JOIN crm.customers c ON c.id = i.customer_id
        JOIN crm.jobs j ON j.id = i.job_id
        JOIN crm.invoice_lines l ON l.invoice_id = i.id
        WHERE i.sent_at >= %(since)s AND i.sent_at < %(until)s AND i.status IN ('open', 'paid', 'uncollectible')
        ORDER BY i.sent_at, i.id, l.position
        """,
        {"since": since, "until": until},
    ).fetchall()


def payments(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT p.id, p.paid_at, p.amount_cents, p.fee_cents, p.currency, p.stripe_payment_id, p.invoice_id,
               coalesce(i.stripe_invoice_number, 'CRM-' || i.id) AS number, c.name AS customer
        FROM crm.payments p JOIN crm.invoices i ON i.id = p.invoice_id JOIN crm.customers c ON c.id = i.customer_id
        WHERE p.paid_at >= %(since)s AND p.paid_at < %(until)s
        ORDER BY p.paid_at, p.id
        """,
        {"since": since, "until": until},
    ).fetchall()


def refunds(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Refunds that went through (status succeeded), by when Stripe created them."""
    return conn.execute(
        """
        SELECT r.id, r.created_at AS refunded_at, r.amount_cents, r.currency, r.stripe_refund_id, r.reason,
               r.invoice_id, coalesce(i.stripe_invoice_number, 'CRM-' || i.id) AS number, c.name AS customer
        FROM crm.refunds r JOIN crm.invoices i ON i.id = r.invoice_id JOIN crm.customers c ON c.id = i.customer_id
        WHERE r.status = 'succeeded' AND r.created_at >= %(since)s AND r.created_at < %(until)s
        ORDER BY r.created_at, r.id
        """,
        {"since": since, "until": until},
    ).fetchall()


def disputes_available(conn: Conn) -> bool:
    row = conn.execute("SELECT to_regclass('crm.disputes') IS NOT NULL AS ok").fetchone()
    return bool(row and row["ok"])


def dispute_moves(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Disputes opened in the window (Stripe takes the amount back) and those won in it
    (Stripe returns it); one row each. Empty when crm.disputes does not exist."""
    if not disputes_available(conn):
        return []
    return conn.execute(
        """
        SELECT d.id, 'opened' AS move, d.opened_at AS at, d.amount_cents, d.currency, d.stripe_dispute_id, d.reason,
               d.status, d.invoice_id, coalesce(i.stripe_invoice_number, 'CRM-' || i.id) AS number,
               c.name AS customer
        FROM crm.disputes d LEFT JOIN crm.invoices i ON i.id = d.invoice_id
        LEFT JOIN crm.customers c ON c.id = i.customer_id
        WHERE d.opened_at >= %(since)s AND d.opened_at < %(until)s
        UNION ALL
        SELECT d.id, 'won', d.closed_at, d.amount_cents, d.currency, d.stripe_dispute_id, d.reason, d.status,
               d.invoice_id, coalesce(i.stripe_invoice_number, 'CRM-' || i.id), c.name
        FROM crm.disputes d LEFT JOIN crm.invoices i ON i.id = d.invoice_id
        LEFT JOIN crm.customers c ON c.id = i.customer_id
        WHERE d.status = 'won' AND d.closed_at >= %(since)s AND d.closed_at < %(until)s
        ORDER BY 3, 1
        """,
        {"since": since, "until": until},
    ).fetchall()


def database_totals(conn: Conn, since: datetime, until: datetime) -> dict[str, Any]:
    """The sums the export must add up to (its summary line, and the tests)."""
    row = conn.execute(
        """
        SELECT (SELECT coalesce(sum(amount_due_cents), 0) FROM crm.invoices
                 WHERE sent_at >= %(since)s AND sent_at < %(until)s
                   AND status IN ('open', 'paid', 'uncollectible')) AS invoiced_cents,
               (SELECT coalesce(sum(amount_cents), 0) FROM crm.payments
                 WHERE paid_at >= %(since)s AND paid_at < %(until)s) AS paid_cents,
               (SELECT coalesce(sum(fee_cents), 0) FROM crm.payments
                 WHERE paid_at >= %(since)s AND paid_at < %(until)s) AS fee_cents,
               (SELECT coalesce(sum(amount_cents), 0) FROM crm.refunds
                 WHERE status = 'succeeded' AND created_at >= %(since)s AND created_at < %(until)s) AS refunded_cents
        """,
        {"since": since, "until": until},
    ).fetchone()
    assert row is not None
    return dict(row)
