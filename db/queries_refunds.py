"""Named queries (reads) for refunds as the dashboard and the Refund button see them: what each
payment of an invoice can still give back, the owner's requests (crm.refund_requests), and the
refunds Stripe reported (crm.refunds) with their status and failure reason."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

Conn = psycopg.Connection[Any]

# Refunds Stripe counts against a charge (pending ones included), as in charge.amount_refunded.
_COUNTED = "('pending', 'requires_action', 'succeeded')"


def refundable_payments(conn: Conn, invoice_id: int) -> list[dict[str, Any]]:
    """The invoice's payments Stripe can refund (they have a payment intent or a charge), newest
    first, each with what is left: its amount less the refunds Stripe counts and the owner's
    requests sent or under way that no refund event has reported yet."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""
            SELECT p.id, p.mode, p.currency, p.amount_cents, p.stripe_payment_intent_id, p.stripe_charge_id,
                   p.amount_cents
                   - coalesce((SELECT sum(r.amount_cents) FROM crm.refunds r
                                WHERE r.payment_id = p.id AND r.status IN {_COUNTED}), 0)
                   - coalesce((SELECT sum(q.amount_cents) FROM crm.refund_requests q
                                WHERE q.payment_id = p.id AND q.status IN ('requested', 'sent')
                                  AND NOT EXISTS (SELECT 1 FROM crm.refunds r
                                                   WHERE r.stripe_refund_id = q.stripe_refund_id)), 0)
                   AS refundable_cents
            FROM crm.payments p
            WHERE p.invoice_id = %s AND (p.stripe_payment_intent_id IS NOT NULL OR p.stripe_charge_id IS NOT NULL)
            ORDER BY p.paid_at DESC, p.id DESC
            """,
            (invoice_id,),
        ).fetchall()


def requests_for_key_prefix(conn: Conn, prefix: str) -> list[dict[str, Any]]:
    """The records of one press (their keys share the press's prefix), in the order they were made."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT r.*, p.stripe_payment_intent_id, p.stripe_charge_id, p.currency FROM crm.refund_requests r "
            "JOIN crm.payments p ON p.id = r.payment_id WHERE r.idempotency_key LIKE %s ORDER BY r.id",
            (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
        ).fetchall()


def invoice_refunds(conn: Conn, invoice_id: int) -> list[dict[str, Any]]:
    """The refunds Stripe reported for the invoice (pending, succeeded, failed with the reason),
    and the owner's requests no refund event has reported yet, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT r.created_at AS at, r.amount_cents, r.currency, r.status, r.reason, r.failure_reason,
                   r.stripe_refund_id, q.requested_by
            FROM crm.refunds r LEFT JOIN crm.refund_requests q ON q.stripe_refund_id = r.stripe_refund_id
            WHERE r.invoice_id = %(id)s
            UNION ALL
            SELECT q.created_at, q.amount_cents, p.currency,
                   CASE q.status WHEN 'refused' THEN 'refused' ELSE 'requested' END, q.reason, q.error,
                   q.stripe_refund_id, q.requested_by
            FROM crm.refund_requests q JOIN crm.payments p ON p.id = q.payment_id
            WHERE q.invoice_id = %(id)s
              AND NOT EXISTS (SELECT 1 FROM crm.refunds r WHERE r.stripe_refund_id = q.stripe_refund_id)
            ORDER BY 1 DESC
            """,
            {"id": invoice_id},
        ).fetchall()
