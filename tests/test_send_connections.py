"""A Send's database cost: one pooled connection per step, counted by the pool itself.

Checked by hand: before issue 22 a Send of a new customer's draft took 33 checkouts for
its five calls (the invoice read and the step's record each on their own connection, the
lease renewed on another before every Stripe try and after every step, the lines read
twice), and this test failed with 33 != 7.
"""

from __future__ import annotations

from typing import Any

import psycopg

from crm.send.workflow import send_invoice
from db.pool import get_pool
from sandbox.testing import RunningSandbox
from tests.fixtures.workflow import STAFF

Conn = psycopg.Connection[dict[str, Any]]
# The claim (checks, lines, lease), then one per step: the first step's read and record; after
# each of the five calls its store, record and lease renewal, the next read and record (the
# last one also marks the invoice open with its reminders).
CHECKOUTS_FOR_FIVE_CALLS = 1 + 1 + 5


def test_a_send_takes_one_pooled_connection_per_step(db: Conn, crm_sandbox: RunningSandbox,
                                                     draft_invoice: int) -> None:
    pool = get_pool()
    before = pool.get_stats().get("requests_num", 0)
    result = send_invoice(draft_invoice, STAFF)
    checkouts = pool.get_stats().get("requests_num", 0) - before

    assert result.ok, result.message
    calls = [r for r in crm_sandbox.control.requests() if r["method"] == "POST"]
    assert len(calls) == 5  # customer, invoice, lines, finalize, email
    assert checkouts == CHECKOUTS_FOR_FIVE_CALLS
    steps = db.execute("SELECT step, status FROM crm.send_steps WHERE invoice_id = %s ORDER BY id",
                       (draft_invoice,)).fetchall()
    assert [(s["step"], s["status"]) for s in steps] == [
        ("customer", "succeeded"), ("invoice", "succeeded"), ("lines", "succeeded"), ("finalize", "succeeded"),
        ("email", "succeeded"), ("complete", "succeeded")]
