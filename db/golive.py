"""Named queries for the go-live checklist (crm.golive_checks) and the facts its steps read.

One row per step, replaced by each check. The rules (what a step needs, when live mode may be
switched on) are in crm/golive/steps.py; this module stores and reads plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from db.pool import Conn


def save_check(conn: Conn, step: str, ok: bool, detail: str, facts: dict[str, Any], fingerprint: str,
               sandboxed: bool, user_id: int | None, actor: str) -> None:
    conn.execute(
        """
        INSERT INTO crm.golive_checks (step, ok, detail, facts, fingerprint, sandboxed, checked_by, actor)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (step) DO UPDATE SET ok = EXCLUDED.ok, detail = EXCLUDED.detail, facts = EXCLUDED.facts,
            fingerprint = EXCLUDED.fingerprint, sandboxed = EXCLUDED.sandboxed, checked_at = now(),
            checked_by = EXCLUDED.checked_by, actor = EXCLUDED.actor
        """,
        (step, ok, detail, Jsonb(facts), fingerprint, sandboxed, user_id, actor),
    )


def checks(conn: Conn) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT g.step, g.ok, g.detail, g.facts, g.fingerprint, g.sandboxed, g.checked_at, g.actor, "
        "u.email AS checked_by_email FROM crm.golive_checks g LEFT JOIN crm.app_users u ON u.id = g.checked_by"
    ).fetchall()
    return {str(r["step"]): dict(r) for r in rows}


def test_invoice_facts(conn: Conn, invoice_id: int, payment_event_types: Sequence[str]) -> dict[str, Any] | None:
    """The test invoice's status, when it was sent, and when the first webhook of its payment
    arrived (one of `payment_event_types`, crm.stripe.event_types.PAYMENT_EVENT_TYPES, whichever
    came first and whatever it changed: it proves Stripe reaches the sidecar)."""
    row = conn.execute(
        """
        SELECT i.id, i.status, i.mode, i.sent_at, i.paid_at, i.amount_due_cents, i.hosted_invoice_url,
               (SELECT min(s.webhook_received_at) FROM crm.stripe_events s
                WHERE s.invoice_id = i.id AND s.type = ANY(%s) AND s.outcome <> 'rejected') AS paid_webhook_at
        FROM crm.invoices i
        WHERE i.id = %s
        """,
        (list(payment_event_types), invoice_id),
    ).fetchone()
    return dict(row) if row else None


def golive_customer(conn: Conn, email: str) -> int | None:
    """The customer an earlier test invoice was sent to (the owner's own address), if any."""
    row = conn.execute(
        "SELECT id FROM crm.customers WHERE lower(email) = lower(%s) AND name LIKE 'Go-live test%%' "
        "ORDER BY id LIMIT 1", (email,)).fetchone()
    return int(row["id"]) if row else None
