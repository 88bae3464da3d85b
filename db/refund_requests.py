"""Named queries (writes) for an owner's refunds: the idempotency record made before each call to
Stripe (crm.refund_requests) and what Stripe answered. Reads are in db/queries_refunds.py."""

from __future__ import annotations

from typing import Any

import psycopg

from db import audit

Conn = psycopg.Connection[Any]


def lock_invoice(conn: Conn, invoice_id: int) -> None:
    """Two presses planning refunds of one invoice at once: one at a time (in the caller's transaction)."""
    conn.execute("SELECT 1 FROM crm.invoices WHERE id = %s FOR UPDATE", (invoice_id,))


def record_request(conn: Conn, key: str, invoice_id: int, payment_id: int, mode: str, amount_cents: int,
                   reason: str, note: str | None, actor: str) -> None:
    """The idempotency record, made before the call; a second press with the same key adds nothing.
    Audited on the invoice, so its timeline says who asked for what."""
    row = conn.execute(
        "WITH made AS (INSERT INTO crm.refund_requests (idempotency_key, invoice_id, payment_id, mode, amount_cents, "
        "reason, note, requested_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING "
        "RETURNING invoice_id) SELECT i.status FROM made JOIN crm.invoices i ON i.id = made.invoice_id",
        (key, invoice_id, payment_id, mode, amount_cents, reason, note, actor),
    ).fetchone()
    if row is not None:
        status = row["status"] if isinstance(row, dict) else row[0]
        audit.write(conn, "invoice", invoice_id, status, status, actor,
                    {"refund_requested_cents": amount_cents, "reason": reason, "payment_id": payment_id})


def mark_sent(conn: Conn, request_id: int, stripe_refund_id: str) -> None:
    conn.execute("UPDATE crm.refund_requests SET status = 'sent', stripe_refund_id = %s, error = NULL, "
                 "updated_at = now() WHERE id = %s", (stripe_refund_id, request_id))


def mark_refused(conn: Conn, request_id: int, error: str) -> None:
    conn.execute("UPDATE crm.refund_requests SET status = 'refused', error = %s, updated_at = now() "
                 "WHERE id = %s AND status = 'requested'", (error[:500], request_id))


def mark_error(conn: Conn, request_id: int, error: str) -> None:
    """Stripe could not be reached: the record stays 'requested', so pressing again retries it."""
    conn.execute("UPDATE crm.refund_requests SET error = %s, updated_at = now() WHERE id = %s",
                 (error[:500], request_id))
