"""Read queries for the Invoices page: the filtered list, one invoice, its timeline.

Every list is LIMITed and ordered on an indexed column. 'overdue', 'processing' and
'disputed' are derived (crm.invoice_display_status): overdue is open with a due date
before `today` (the business's local date, passed in), processing is open with a bank
debit on its way, disputed has an open dispute on one of its payments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from db.pool import Conn

STATUS_FILTERS = ("draft", "sending", "open", "overdue", "processing", "disputed", "paid", "void", "uncollectible")

# The one home of the refund state the dashboard shows (the list and an invoice's page): none
# (NULL), 'partially refunded' or 'fully refunded'.
REFUND_STATE = ("CASE WHEN i.amount_refunded_cents <= 0 THEN NULL "
                "WHEN i.amount_refunded_cents >= i.amount_paid_cents THEN 'fully refunded' "
                "ELSE 'partially refunded' END")

# Open disputes of an invoice (crm.disputes rows not in a final status).
_OPEN_DISPUTES = "(SELECT count(*) FROM crm.disputes d WHERE d.invoice_id = i.id AND d.closed_at IS NULL)"
_SHOWN = ("crm.invoice_display_status(i.status, i.due_date, i.processing_payment_intent_id, "
          + _OPEN_DISPUTES + ", %(today)s)")


@dataclass(frozen=True)
class InvoiceFilter:
    status: str | None = None  # one of STATUS_FILTERS; 'overdue' = open and past due
    customer_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None  # inclusive
    mode: str | None = None
    limit: int = 50
    offset: int = 0


_WHERE = """
    WHERE (%(status)s::text IS NULL
           OR (%(status)s = 'overdue' AND i.status = 'open' AND i.due_date < %(today)s
               AND i.processing_payment_intent_id IS NULL)
           OR (%(status)s = 'processing' AND i.status = 'open' AND i.processing_payment_intent_id IS NOT NULL)
           OR (%(status)s = 'disputed' AND EXISTS (SELECT 1 FROM crm.disputes d
                                                   WHERE d.invoice_id = i.id AND d.closed_at IS NULL))
           OR (%(status)s NOT IN ('overdue', 'processing', 'disputed') AND i.status = %(status)s))
      AND (%(customer)s::bigint IS NULL OR i.customer_id = %(customer)s)
      AND (%(from)s::date IS NULL OR i.created_at >= %(from)s::date)
      AND (%(to)s::date IS NULL OR i.created_at < %(to)s::date + 1)
      AND (%(mode)s::text IS NULL OR i.mode = %(mode)s)
"""


def _params(f: InvoiceFilter, today: date) -> dict[str, Any]:
    return {"status": f.status, "customer": f.customer_id, "from": f.created_from, "to": f.created_to,
            "mode": f.mode, "today": today, "limit": f.limit, "offset": f.offset}


def list_invoices(conn: Conn, f: InvoiceFilter, today: date) -> list[dict[str, Any]]:
    """One page of invoices, newest first, with the latest email signal of each."""
    return conn.execute(
        """
        SELECT i.id, coalesce(i.stripe_invoice_number, 'draft #' || i.id) AS number, c.name AS customer,
               i.customer_id, i.job_id, i.kind,
               """ + _SHOWN + """ AS status,
               -- A draft's total is its lines' (a draft saved elsewhere may not carry amount_due yet).
               CASE WHEN i.status = 'draft' THEN (SELECT coalesce(sum(l.amount_cents), 0)
                                                  FROM crm.invoice_lines l WHERE l.invoice_id = i.id)
                    ELSE i.amount_due_cents END AS amount_due_cents,
               i.amount_paid_cents, i.amount_due_cents - i.amount_paid_cents AS amount_remaining_cents,
               i.amount_refunded_cents, i.currency, i.due_date,
               """ + REFUND_STATE + """ AS refund_state,
               CASE WHEN i.status = 'open' AND i.due_date < %(today)s THEN %(today)s - i.due_date END
                   AS days_overdue,
               i.mode, i.hosted_invoice_url, i.attention, i.sent_at, i.paid_at, i.created_at,
               CASE WHEN e.id IS NULL THEN NULL
                    WHEN e.status IN ('bounced', 'complained', 'failed', 'suppressed') THEN e.status
                    WHEN e.first_clicked_at IS NOT NULL THEN 'clicked'
                    WHEN e.first_opened_at IS NOT NULL THEN 'opened'
                    ELSE e.status END || CASE WHEN e.kind = 'reminder' THEN ' (reminder)' ELSE '' END
                   AS email_signal
        FROM crm.invoices i
        JOIN crm.customers c ON c.id = i.customer_id
        LEFT JOIN LATERAL (
            SELECT m.id, m.kind, m.status, m.first_opened_at, m.first_clicked_at
            FROM crm.email_messages m WHERE m.invoice_id = i.id ORDER BY m.created_at DESC, m.id DESC LIMIT 1
        ) e ON true
        """ + _WHERE + """
        ORDER BY i.created_at DESC, i.id DESC
        LIMIT %(limit)s OFFSET %(offset)s
        """,
        _params(f, today),
    ).fetchall()


def count_invoices(conn: Conn, f: InvoiceFilter, today: date) -> int:
    row = conn.execute("SELECT count(*) AS n FROM crm.invoices i" + _WHERE, _params(f, today)).fetchone()
    assert row is not None
    return int(row["n"])


def get_invoice(conn: Conn, invoice_id: int, today: date | None = None) -> dict[str, Any] | None:
    """One invoice with its customer and job; `shown_status` is the derived status as of `today`."""
    return conn.execute(
        """
        SELECT i.*, c.name AS customer, c.email AS customer_email, j.title AS job_title,
               i.amount_due_cents - i.amount_paid_cents AS amount_remaining_cents,
               """ + _SHOWN + """ AS shown_status, """ + REFUND_STATE + """ AS refund_state
        FROM crm.invoices i JOIN crm.customers c ON c.id = i.customer_id JOIN crm.jobs j ON j.id = i.job_id
        WHERE i.id = %(id)s
        """,
        {"id": invoice_id, "today": today or date.today()},
    ).fetchone()


def invoice_declines(conn: Conn, invoice_id: int, limit: int = 3) -> list[dict[str, Any]]:
    """The invoice's latest declined payment attempts with Stripe's reason, newest first."""
    return conn.execute(
        "SELECT failed_at, code, decline_code, message, stripe_payment_intent_id FROM crm.payment_failures "
        "WHERE invoice_id = %s ORDER BY failed_at DESC, id DESC LIMIT %s", (invoice_id, limit)).fetchall()


def invoice_payments(conn: Conn, invoice_id: int) -> list[dict[str, Any]]:
    """Each payment recorded on the invoice, oldest first (several when it was paid in parts)."""
    return conn.execute(
        "SELECT paid_at, amount_cents, currency, fee_cents, stripe_payment_intent_id, stripe_charge_id, "
        "stripe_payment_id FROM crm.payments WHERE invoice_id = %s ORDER BY paid_at, id",
        (invoice_id,),
    ).fetchall()


def invoice_disputes(conn: Conn, invoice_id: int) -> list[dict[str, Any]]:
    """The invoice's disputes, open ones first: amount at stake, reason, status, evidence deadline."""
    return conn.execute(
        "SELECT stripe_dispute_id, amount_cents, currency, reason, status, evidence_due_by, opened_at, closed_at, "
        "closed_at IS NULL AS open FROM crm.disputes WHERE invoice_id = %s "
        "ORDER BY closed_at IS NULL DESC, opened_at DESC, id DESC",
        (invoice_id,),
    ).fetchall()


def invoice_timeline(conn: Conn, invoice_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """Everything that happened to one invoice, oldest first: status changes (audit log, with
    the derived ones: processing, disputed), payments, emails and their Resend events,
    reminders, and the Stripe events that matched it."""
    return conn.execute(
        """
        SELECT * FROM (
            SELECT a.created_at AS at, 'status' AS source,
                   CASE WHEN a.from_status = a.to_status AND a.detail ? 'lines'
                        THEN 'lines saved: ' || (a.detail ->> 'lines') || ' lines, '
                             || to_char((a.detail ->> 'total_cents')::numeric / 100, 'FM999,999,990.00')
                        ELSE coalesce(a.from_status || ' → ', '') || coalesce(a.to_status, '') END
                   || CASE WHEN a.detail ? 'dispute'
                           THEN ' — dispute ' || (a.detail ->> 'dispute_status') || ', '
                                || to_char((a.detail ->> 'amount_cents')::numeric / 100, 'FM999,999,990.00')
                                || coalesce(' (' || (a.detail ->> 'reason') || ')', '')
                           WHEN a.detail ? 'payment_error' THEN ' — payment failed: ' || (a.detail ->> 'payment_error')
                           WHEN a.to_status = 'processing'
                           THEN ' — bank payment of '
                                || to_char((a.detail ->> 'amount_cents')::numeric / 100, 'FM999,999,990.00')
                                || ' on its way'
                           WHEN a.detail ? 'partial_payment_cents'
                           THEN ' — partial payment of '
                                || to_char((a.detail ->> 'partial_payment_cents')::numeric / 100, 'FM999,999,990.00')
                           ELSE '' END AS what,
                   a.actor_type || ': ' || a.actor AS who
            FROM crm.audit_log a WHERE a.entity = 'invoice' AND a.entity_id = %(id)s
          UNION ALL
            SELECT p.paid_at, 'payment',
                   'payment of ' || to_char(p.amount_cents::numeric / 100, 'FM999,999,990.00') || ' received',
                   coalesce(p.stripe_payment_intent_id, p.stripe_payment_id)
            FROM crm.payments p WHERE p.invoice_id = %(id)s
          UNION ALL
            SELECT coalesce(m.sent_at, m.created_at), 'email',
                   m.kind || ' email ' || m.status || ' to ' || m.to_address, coalesce(m.resend_id, '')
            FROM crm.email_messages m WHERE m.invoice_id = %(id)s
          UNION ALL
            SELECT ev.occurred_at, 'email event',
                   replace(ev.type, 'email.', '') || ' (' || m.kind || ')', ev.id
            FROM crm.email_messages m JOIN crm.email_events ev ON ev.email_message_id = m.id
            WHERE m.invoice_id = %(id)s
          UNION ALL
            SELECT coalesce(r.sent_at, r.cancelled_at, r.send_at), 'reminder',
                   'reminder ' || r.sequence || ' (+' || r.offset_days || ' days): ' || r.status
                   || coalesce(' — ' || r.cancel_reason, ''), coalesce(r.resend_id, '')
            FROM crm.reminders r WHERE r.invoice_id = %(id)s
          UNION ALL
            SELECT s.received_at, 'stripe', s.type || ' → ' || s.outcome
                   || CASE WHEN s.duplicate_deliveries > 0 THEN ' (+' || s.duplicate_deliveries || ' duplicates)'
                      ELSE '' END, s.id
            FROM crm.stripe_events s WHERE s.invoice_id = %(id)s
          UNION ALL
            SELECT p.paid_at, 'payment',
                   'paid ' || to_char(p.amount_cents::numeric / 100, 'FM999,999,990.00') || ' ' || upper(p.currency)
                   || CASE WHEN p.fee_cents IS NOT NULL
                           THEN ' (Stripe fee ' || to_char(p.fee_cents::numeric / 100, 'FM999,999,990.00')
                                || ', net ' || to_char(p.net_cents::numeric / 100, 'FM999,999,990.00') || ')'
                           ELSE ' (fee not known yet)' END,
                   coalesce(p.stripe_payment_intent_id, p.stripe_payment_id)
            FROM crm.payments p WHERE p.invoice_id = %(id)s
          UNION ALL
            SELECT a.created_at, 'refund',
                   'refund ' || to_char((a.detail ->> 'amount_cents')::numeric / 100, 'FM999,999,990.00') || ' '
                   || coalesce(a.from_status || ' → ', '') || a.to_status, r.stripe_refund_id
            FROM crm.audit_log a JOIN crm.refunds r ON r.id = a.entity_id
            WHERE a.entity = 'refund' AND r.invoice_id = %(id)s
          UNION ALL
            SELECT f.failed_at, 'decline',
                   'payment declined: ' || coalesce(f.message, '') || ' ('
                   || concat_ws(' / ', f.code, f.decline_code) || ')', f.stripe_payment_intent_id
            FROM crm.payment_failures f WHERE f.invoice_id = %(id)s
          UNION ALL
            SELECT coalesce(st.finished_at, st.started_at), 'send step',
                   st.step || ' ' || st.status || coalesce(': ' || st.error, ''), 'attempt ' || st.attempt
            FROM crm.send_steps st WHERE st.invoice_id = %(id)s AND st.status = 'failed'
        ) t
        ORDER BY at, source
        LIMIT %(limit)s
        """,
        {"id": invoice_id, "limit": limit},
    ).fetchall()


def live_tiles(conn: Conn, today: date, day_start: datetime) -> dict[str, Any]:
    """The small numbers over the invoice list: open, overdue, paid since the local midnight."""
    row = conn.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'open') AS open_count,
               coalesce(sum(amount_due_cents - amount_paid_cents) FILTER (WHERE status = 'open'), 0)
                   AS outstanding_cents,
               count(*) FILTER (WHERE status = 'open' AND due_date < %(today)s) AS overdue_count,
               coalesce(sum(amount_due_cents - amount_paid_cents)
                        FILTER (WHERE status = 'open' AND due_date < %(today)s), 0) AS overdue_cents
        FROM crm.invoices WHERE status = 'open'
        """,
        {"today": today},
    ).fetchone()
    paid = conn.execute(
        "SELECT count(*) AS paid_count, coalesce(sum(amount_paid_cents), 0) AS paid_cents FROM crm.invoices "
        "WHERE paid_at >= %(since)s",
        {"since": day_start},
    ).fetchone()
    assert row is not None and paid is not None
    return {**row, **paid}


def draft_lines(conn: Conn, invoice_id: int) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT position, description, quantity, unit_amount_cents, amount_cents FROM crm.invoice_lines "
        "WHERE invoice_id = %s ORDER BY position",
        (invoice_id,),
    ).fetchall()
