"""Named queries for what the payment details worker fetches from Stripe: fees and net from
balance transactions (payments and refunds), payments still known only by an event id, and
invoices whose decline reason is still to be looked up.

Rows are claimed by pushing their next attempt past a lease in the same statement
(FOR UPDATE SKIP LOCKED), so several sidecars never fetch one twice at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

Conn = psycopg.Connection[Any]

LEASE = "interval '2 minutes'"


def claim_payments_without_fee(conn: Conn, mode: str, limit: int = 50) -> list[dict[str, Any]]:
    """Payments of `mode` with a payment intent or charge and no fee yet, due for an attempt."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"UPDATE crm.payments p SET fee_next_attempt_at = now() + {LEASE} "
            "FROM (SELECT id FROM crm.payments WHERE fee_cents IS NULL AND mode = %s AND fee_next_attempt_at <= now() "
            "      AND (stripe_payment_intent_id IS NOT NULL OR stripe_charge_id IS NOT NULL) "
            "      ORDER BY fee_next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due "
            "WHERE p.id = due.id RETURNING p.id, p.invoice_id, p.stripe_payment_intent_id, p.stripe_charge_id, "
            "p.fee_attempts",
            (mode, limit)).fetchall()


def record_payment_fee(conn: Conn, payment_id: int, charge_id: str, txn: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE crm.payments SET stripe_charge_id = coalesce(stripe_charge_id, %(charge)s), "
        "stripe_balance_transaction_id = %(txn)s, fee_cents = %(fee)s, net_cents = %(net)s, "
        "available_on = to_timestamp(%(available_on)s), fee_error = NULL, fee_attempts = fee_attempts + 1 "
        "WHERE id = %(id)s AND fee_cents IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM crm.payments o WHERE o.stripe_charge_id = %(charge)s AND o.id <> %(id)s)",
        {"charge": charge_id, "txn": txn["id"], "fee": int(txn["fee"]), "net": int(txn["net"]),
         "available_on": txn.get("available_on"), "id": payment_id})


def payment_fee_not_yet(conn: Conn, table: str, row_id: int, error: str, retry_s: float) -> None:
    """Stripe has no balance transaction yet (or could not be asked): try again after `retry_s`."""
    assert table in ("payments", "refunds")
    conn.execute(f"UPDATE crm.{table} SET fee_error = %s, fee_attempts = fee_attempts + 1, "
                 "fee_next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
                 (error[:300], retry_s, row_id))


def claim_refunds_without_fee(conn: Conn, mode: str, limit: int = 50) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"UPDATE crm.refunds r SET fee_next_attempt_at = now() + {LEASE} "
            "FROM (SELECT id FROM crm.refunds WHERE fee_cents IS NULL AND status = 'succeeded' AND mode = %s "
            "      AND fee_next_attempt_at <= now() ORDER BY fee_next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due "
            "WHERE r.id = due.id RETURNING r.id, r.stripe_refund_id, r.stripe_balance_transaction_id, r.fee_attempts",
            (mode, limit)).fetchall()


def record_refund_fee(conn: Conn, refund_id: int, txn: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE crm.refunds SET stripe_balance_transaction_id = %s, fee_cents = %s, net_cents = %s, fee_error = NULL, "
        "fee_attempts = fee_attempts + 1 WHERE id = %s",
        (txn["id"], abs(int(txn["fee"])), int(txn["net"]), refund_id))


def invoices_with_unlinked_payments(conn: Conn, mode: str, older_than_s: int = 60,
                                    limit: int = 50) -> list[dict[str, Any]]:
    """Invoices with a payment recorded only under an event id (its InvoicePayment never
    arrived): the worker asks Stripe for the invoice's payments."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT DISTINCT i.id, i.stripe_invoice_id FROM crm.payments p JOIN crm.invoices i ON i.id = p.invoice_id "
            "WHERE p.mode = %s AND p.stripe_payment_id LIKE 'evt\\_%%' AND i.stripe_invoice_id IS NOT NULL "
            "AND p.created_at < now() - make_interval(secs => %s) ORDER BY i.id LIMIT %s",
            (mode, older_than_s, limit)).fetchall()


def claim_decline_lookups(conn: Conn, mode: str, limit: int = 20) -> list[dict[str, Any]]:
    """Invoices whose last payment failed with no reason recorded yet, due for a look-up."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"UPDATE crm.invoices i SET decline_lookup_at = now() + {LEASE}, "
            "decline_lookup_attempts = decline_lookup_attempts + 1 "
            "FROM (SELECT id FROM crm.invoices WHERE decline_lookup_at <= now() AND mode = %s "
            "      AND stripe_invoice_id IS NOT NULL ORDER BY decline_lookup_at LIMIT %s FOR UPDATE SKIP LOCKED) due "
            "WHERE i.id = due.id RETURNING i.id, i.stripe_invoice_id, i.decline_lookup_attempts",
            (mode, limit)).fetchall()


def decline_lookup_done(conn: Conn, invoice_id: int, retry_at: datetime | None = None) -> None:
    conn.execute("UPDATE crm.invoices SET decline_lookup_at = %s WHERE id = %s", (retry_at, invoice_id))


def has_decline(conn: Conn, payment_intent_id: str, charge_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM crm.payment_failures WHERE stripe_payment_intent_id = %s "
                       "AND stripe_charge_id = %s", (payment_intent_id, charge_id)).fetchone()
    return row is not None


def replay_unmatched(conn: Conn, mode: str, since: datetime) -> dict[str, int]:
    """Re-applies each unmatched event of `mode` received since `since`, one transaction each;
    returns outcome -> count of those that are no longer unmatched."""
    with conn.cursor(row_factory=tuple_row) as cur:
        ids = [r[0] for r in cur.execute("SELECT crm.unmatched_event_ids(%s, %s)", (mode, since)).fetchall()]
    counts: dict[str, int] = {}
    for event_id in ids:
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute("SELECT crm.replay_stripe_event(%s) ->> 'outcome'", (event_id,)).fetchone()
        outcome = str(row[0]) if row else "skipped"
        if outcome not in ("unmatched", "skipped"):
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts
