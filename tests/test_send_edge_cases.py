"""Issue 13's workflow edge cases: void completes the job, the Send lease and Stripe's 409,
totals compared on the draft, the Stripe customer kept in step with the CRM."""

from __future__ import annotations

from typing import Any

import psycopg

from crm.send_invoice import send_invoice, void_invoice
from sandbox.testing import RunningSandbox
from tests.fixtures.workflow import STAFF, MakeInvoice

Conn = psycopg.Connection[dict[str, Any]]


def invoice_row(db: Conn, invoice_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return row


# ---------------------------------------------------------------- 1. void completes the job

def test_voiding_the_last_open_invoice_of_a_job_with_a_paid_deposit_completes_the_job(
        db: Conn, crm_sandbox: RunningSandbox, make_invoice: MakeInvoice) -> None:
    final = make_invoice()
    inv = invoice_row(db, final)
    db.execute("INSERT INTO crm.invoices (job_id, customer_id, kind, status, amount_due_cents, amount_paid_cents, "
               "paid_at, mode, stripe_invoice_id) VALUES (%s, %s, 'deposit', 'paid', 5000, 5000, now(), 'test', "
               "'in_deposit')", (inv["job_id"], inv["customer_id"]))
    assert send_invoice(final, STAFF).ok

    void_invoice(final, STAFF)

    job = db.execute("SELECT status, completed_at, completed_by_event_id FROM crm.jobs WHERE id = %s",
                     (inv["job_id"],)).fetchone()
    assert job is not None and job["status"] == "completed" and job["completed_at"] is not None
    assert job["completed_by_event_id"] is None
    audit = db.execute("SELECT actor_type, actor, detail FROM crm.audit_log WHERE entity = 'job' AND entity_id = %s "
                       "AND to_status = 'completed'", (inv["job_id"],)).fetchall()
    assert len(audit) == 1
    assert audit[0]["actor_type"] == "user" and audit[0]["actor"] == STAFF
    assert audit[0]["detail"]["completed_by"] == "void" and audit[0]["detail"]["voided_invoice_id"] == final


def test_voiding_the_only_invoice_of_a_job_leaves_the_job_open(
        db: Conn, crm_sandbox: RunningSandbox, make_invoice: MakeInvoice) -> None:
    only = make_invoice()
    assert send_invoice(only, STAFF).ok
    void_invoice(only, STAFF)
    job = db.execute("SELECT status FROM crm.jobs WHERE id = %s", (invoice_row(db, only)["job_id"],)).fetchone()
    assert job is not None and job["status"] != "completed"
