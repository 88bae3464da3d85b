"""Named queries for webhook health: what the ledger (crm.stripe_events) says about deliveries.

A delivery "received" is an event whose webhook arrived (webhook_received_at); a "missed
delivery" is an event reconcile recorded first whose webhook never came (source 'reconcile',
webhook_received_at NULL); reconcile's synthetic drift repairs (evt_reconcile_...) are counted
apart, as repairs. The sidecar writes nothing for a delivery that does not verify (400), so the
last failure the ledger can show is the last event it did not apply (rejected or unmatched).
"""

from __future__ import annotations

from typing import Any

from db.pool import Conn


def delivery_counts(conn: Conn, mode: str, hours: int = 24) -> dict[str, Any]:
    row = conn.execute(
        """
        SELECT count(*) FILTER (WHERE webhook_received_at > now() - make_interval(hours => %(h)s)) AS received,
               coalesce(sum(duplicate_deliveries) FILTER (
                   WHERE webhook_received_at > now() - make_interval(hours => %(h)s)), 0) AS duplicates,
               count(*) FILTER (WHERE source = 'reconcile' AND webhook_received_at IS NULL
                                AND id NOT LIKE 'evt\\_reconcile\\_%%'
                                AND received_at > now() - make_interval(hours => %(h)s)) AS missed,
               count(*) FILTER (WHERE id LIKE 'evt\\_reconcile\\_%%'
                                AND received_at > now() - make_interval(hours => %(h)s)) AS repairs,
               count(*) FILTER (WHERE outcome = 'rejected'
                                AND received_at > now() - make_interval(hours => %(h)s)) AS rejected,
               max(webhook_received_at) AS last_received
        FROM crm.stripe_events WHERE mode = %(mode)s
        """,
        {"mode": mode, "h": hours},
    ).fetchone()
    assert row is not None
    return dict(row)


def missed_deliveries(conn: Conn, mode: str, days: int = 7, limit: int = 20) -> list[dict[str, Any]]:
    """Events reconcile found that never arrived by webhook, newest first."""
    return conn.execute(
        """
        SELECT received_at AS found_at, stripe_created_at, id, type, outcome, invoice_id
        FROM crm.stripe_events
        WHERE mode = %s AND source = 'reconcile' AND webhook_received_at IS NULL
          AND id NOT LIKE 'evt\\_reconcile\\_%%' AND received_at > now() - make_interval(days => %s)
        ORDER BY received_at DESC, id LIMIT %s
        """,
        (mode, days, limit),
    ).fetchall()


def last_failure(conn: Conn, mode: str) -> dict[str, Any] | None:
    """The last event the sidecar or reconcile recorded but did not apply (rejected, unmatched)."""
    row = conn.execute(
        "SELECT received_at, id, type, outcome, detail, source FROM crm.stripe_events "
        "WHERE mode = %s AND outcome IN ('rejected', 'unmatched') ORDER BY received_at DESC LIMIT 1",
        (mode,),
    ).fetchone()
    return dict(row) if row else None
