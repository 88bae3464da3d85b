"""Named queries for crm.reconcile_runs: the reconciler's lock, checkpoint and run records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]

COUNT_COLUMNS = ("events_seen", "events_applied", "events_duplicate", "invoices_checked", "invoices_repaired",
                 "errors")


def try_lock(conn: Conn, mode: str) -> bool:
    """Takes the mode's run lock for the current transaction of `conn` (not autocommit)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT pg_try_advisory_xact_lock(crm.reconcile_lock_key(%s))", (mode,)).fetchone()
    return bool(row and row[0])


def last_checkpoint(conn: Conn, mode: str) -> datetime | None:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT max(checkpoint) FROM crm.reconcile_runs WHERE mode = %s", (mode,)).fetchone()
    return row[0] if row and isinstance(row[0], datetime) else None


def start_run(conn: Conn, mode: str, actor: str, listed_since: datetime) -> int:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("INSERT INTO crm.reconcile_runs (mode, actor, listed_since) VALUES (%s, %s, %s) "
                          "RETURNING id", (mode, actor, listed_since)).fetchone()
    assert row is not None
    return int(row[0])


def close_interrupted(conn: Conn, mode: str) -> int:
    """Marks runs of `mode` left 'running' as failed; call only while holding the mode's lock."""
    cur = conn.execute(
        "UPDATE crm.reconcile_runs SET status = 'failed', finished_at = now(), errors = errors + 1, "
        "detail = detail || '{\"errors\": [\"interrupted: the process stopped during the run\"]}'::jsonb "
        "WHERE mode = %s AND status = 'running'", (mode,))
    return cur.rowcount


def finish_run(conn: Conn, run_id: int, *, ok: bool, counts: dict[str, int], checkpoint: datetime | None,
               detail: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE crm.reconcile_runs SET status = %(status)s, finished_at = now(), events_seen = %(events_seen)s, "
        "events_applied = %(events_applied)s, events_duplicate = %(events_duplicate)s, "
        "invoices_checked = %(invoices_checked)s, invoices_repaired = %(invoices_repaired)s, errors = %(errors)s, "
        "checkpoint = %(checkpoint)s, detail = %(detail)s WHERE id = %(id)s",
        {"status": "succeeded" if ok else "failed", "checkpoint": checkpoint, "detail": Jsonb(detail),
         "id": run_id, **{c: int(counts.get(c, 0)) for c in COUNT_COLUMNS}},
    )


def invoices_to_check(conn: Conn, mode: str) -> list[dict[str, Any]]:
    """CRM invoices of `mode` that Stripe may have moved on: open, sending or uncollectible.
    The demo business (ops/seed.py, `demo`) never existed at Stripe: it is not asked about."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, status, stripe_invoice_id, amount_paid_cents, send_lease_until, "
            "       send_lease_until IS NULL OR send_lease_until < now() AS lease_expired "
            "FROM crm.invoices WHERE mode = %s AND stripe_invoice_id IS NOT NULL AND NOT demo "
            "AND status IN ('open', 'sending', 'uncollectible') ORDER BY id",
            (mode,),
        ).fetchall()


def latest(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs first, for the Activity page."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, mode, actor, status, started_at, finished_at, listed_since, events_seen, events_applied, "
            "events_duplicate, invoices_checked, invoices_repaired, errors, checkpoint, detail "
            "FROM crm.reconcile_runs ORDER BY started_at DESC, id DESC LIMIT %s",
            (limit,),
        ).fetchall()


def invoices_touched(conn: Conn, mode: str, since: datetime) -> list[dict[str, Any]]:
    """Invoices of `mode` whose money may have moved since `since` (paid, refunded, or still
    collectable and changed): the reconciler compares their amounts with Stripe's. Not the
    demo business's (never at Stripe)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT i.id, i.status, i.stripe_invoice_id, i.amount_paid_cents, i.amount_refunded_cents "
            "FROM crm.invoices i WHERE i.mode = %(mode)s AND i.stripe_invoice_id IS NOT NULL AND NOT i.demo "
            "AND i.status IN ('open', 'paid', 'uncollectible') "
            "AND (i.updated_at >= %(since)s OR i.paid_at >= %(since)s "
            "     OR EXISTS (SELECT 1 FROM crm.payments p WHERE p.invoice_id = i.id AND p.created_at >= %(since)s) "
            "     OR EXISTS (SELECT 1 FROM crm.refunds r WHERE r.invoice_id = i.id AND r.updated_at >= %(since)s)) "
            "ORDER BY i.id",
            {"mode": mode, "since": since},
        ).fetchall()


def dispute_states(conn: Conn, invoice_id: int) -> dict[str, str]:
    """Stripe dispute id -> the status the CRM holds, for an invoice's disputes."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT stripe_dispute_id, status FROM crm.disputes WHERE invoice_id = %s",
                           (invoice_id,)).fetchall()
    return {str(r["stripe_dispute_id"]): str(r["status"]) for r in rows}


def payments_of(conn: Conn, invoice_id: int) -> list[dict[str, Any]]:
    """An invoice's payments with what the CRM counts as refunded on each."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT p.id, p.stripe_payment_id, p.stripe_payment_intent_id, p.stripe_charge_id, p.amount_cents, "
            "greatest(p.charge_amount_refunded_cents, coalesce((SELECT sum(r.amount_cents) FROM crm.refunds r "
            "  WHERE r.payment_id = p.id AND r.status IN ('pending', 'requires_action', 'succeeded')), 0)) AS refunded "
            "FROM crm.payments p WHERE p.invoice_id = %s ORDER BY p.id",
            (invoice_id,),
        ).fetchall()
