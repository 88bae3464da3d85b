"""The transition costs one database round trip: `apply_event`, the call the route
makes, sends one message batch and waits once (checked with libpq's protocol trace)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from db.stripe_events import apply_event
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import seed_invoice


def frontend_syncs(trace: str) -> int:
    """Round trips in the extended protocol end with a frontend Sync (simple queries with Query)."""
    lines = [line.split("\t") for line in trace.splitlines()]
    return sum(1 for parts in lines if len(parts) > 2 and parts[1] == "F" and parts[3] in ("Sync", "Query"))


def test_apply_event_is_one_round_trip(db: Any, database_url: str) -> None:
    inv = seed_invoice(db)
    seed = sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_paid=10_000))
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SELECT 1")  # connection setup is not part of the event
        fd, path = tempfile.mkstemp(prefix="libpq-trace-")
        try:
            with os.fdopen(fd, "w") as handle:
                conn.pgconn.trace(handle.fileno())
                result = apply_event(conn, seed, "test")
                conn.pgconn.untrace()
            with open(path) as handle:
                trace = handle.read()
        finally:
            os.unlink(path)

    assert result.outcome == "applied" and result.job_completed
    assert frontend_syncs(trace) == 1, trace
    assert db.execute("SELECT status FROM crm.invoices").fetchone() == {"status": "paid"}


def test_apply_event_refuses_a_connection_inside_a_transaction(db: Any, database_url: str) -> None:
    with psycopg.connect(database_url) as conn, pytest.raises(ValueError, match="autocommit"):
        apply_event(conn, sp.event("customer.created", {"id": "cus_1"}), "test")


def test_apply_event_returns_resend_ids_to_cancel(db: Any, database_url: str) -> None:
    from tests.fixtures.sidecar import seed_reminders

    inv = seed_invoice(db)
    seed_reminders(db, inv["invoice_id"])
    evt = sp.event("invoice.voided", sp.invoice(inv["stripe_invoice_id"], status="void"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        result = apply_event(conn, evt, "test")

    assert (result.outcome, result.from_status, result.to_status) == ("applied", "open", "void")
    assert result.resend_ids_to_cancel == [f"re_sched_{inv['invoice_id']}"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        again = apply_event(conn, evt, "test")
    assert again.outcome == "duplicate" and again.resend_ids_to_cancel == []
