"""Design invariant 3 for the invoice email: a payment (or a void) that lands while its Send is
still running stops the email step. The customer paid through a link shared before the
email went out; the Send completes without an email and without moving the status back.
Real Postgres, the Stripe and Resend sandbox over HTTP, events applied through the same
SQL function the webhook uses."""

from __future__ import annotations

from typing import Any

import psycopg

from crm.send.workflow import SendOptions, send_invoice
from db.stripe_events import apply_event
from sandbox.testing import RunningSandbox
from tests import stripe_payloads as sp
from tests.fixtures.workflow import DEFAULT_TOTAL, STAFF

Conn = psycopg.Connection[dict[str, Any]]


def stripe_invoice_id(db: Conn, invoice_id: int) -> str:
    row = db.execute("SELECT stripe_invoice_id FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return str(row["stripe_invoice_id"])


def customer_pays_at_stripe(db: Conn, sbx: RunningSandbox, invoice_id: int) -> None:
    """Pay on the sandbox's hosted page and apply Stripe's own invoice.paid event, as the webhook would."""
    sid = stripe_invoice_id(db, invoice_id)
    assert sbx.control.pay_invoice(sid)["invoice"]["status"] == "paid"
    paid = [e for e in sbx.control.events() if e["type"] == "invoice.paid" and e["data"]["object"]["id"] == sid]
    assert len(paid) == 1
    assert apply_event(db, paid[0], "test").outcome == "applied"


def send_steps(db: Conn, invoice_id: int) -> list[tuple[str, str, str | None]]:
    rows = db.execute("SELECT step, status, error FROM crm.send_steps WHERE invoice_id = %s ORDER BY id",
                      (invoice_id,)).fetchall()
    return [(r["step"], r["status"], r["error"]) for r in rows]


def test_paid_after_finalize_while_the_send_runs_sends_no_email(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    def pays_right_after_finalize(step: str) -> None:
        if step == "finalize":
            customer_pays_at_stripe(db, crm_sandbox, draft_invoice)

    result = send_invoice(draft_invoice, STAFF, options=SendOptions(after_step=pays_right_after_finalize))

    assert crm_sandbox.control.resend_emails() == [], "no invoice email reached the customer"
    assert crm_sandbox.control.requests(service="resend") == [], "Resend was not even asked"
    assert (result.ok, result.invoice_status, result.failed_step) == (True, "paid", None)
    assert result.message == "Paid before the email went out; no email sent."
    assert result.pay_url and result.pay_url.startswith(crm_sandbox.base_url)
    inv = db.execute("SELECT status, amount_paid_cents, send_lease_token, resend_email_id, attention, sent_at "
                     "FROM crm.invoices WHERE id = %s", (draft_invoice,)).fetchone()
    assert inv == {"status": "paid", "amount_paid_cents": DEFAULT_TOTAL, "send_lease_token": None,
                   "resend_email_id": None, "attention": None, "sent_at": None}
    assert db.execute("SELECT count(*) AS n FROM crm.email_messages WHERE invoice_id = %s",
                      (draft_invoice,)).fetchone() == {"n": 0}
    assert db.execute("SELECT count(*) AS n FROM crm.reminders WHERE invoice_id = %s",
                      (draft_invoice,)).fetchone() == {"n": 0}
    steps = send_steps(db, draft_invoice)
    assert [(s, st) for s, st, _ in steps] == [
        ("customer", "succeeded"), ("invoice", "succeeded"), ("lines", "succeeded"), ("finalize", "succeeded"),
        ("email", "skipped"), ("complete", "skipped")]
    assert steps[4][2] == "invoice was already paid before the email went out; no email sent"
    moves = db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity = 'invoice' AND entity_id = %s "
                       "AND from_status IS DISTINCT FROM to_status ORDER BY id", (draft_invoice,)).fetchall()
    assert [(m["from_status"], m["to_status"]) for m in moves] == [("draft", "sending"), ("sending", "paid")]


def test_voided_at_stripe_while_the_send_runs_sends_no_email(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    def voided_right_after_finalize(step: str) -> None:
        if step != "finalize":
            return
        evt = sp.event("invoice.voided", sp.invoice(stripe_invoice_id(db, draft_invoice), status="void",
                                                    amount_due=DEFAULT_TOTAL, crm_invoice_id=draft_invoice))
        assert apply_event(db, evt, "test").outcome == "applied"

    result = send_invoice(draft_invoice, STAFF, options=SendOptions(after_step=voided_right_after_finalize))

    assert crm_sandbox.control.resend_emails() == []
    assert (result.ok, result.invoice_status, result.message) == (
        True, "void", "Voided before the email went out; no email sent.")
    assert ("email", "skipped") in [(s, st) for s, st, _ in send_steps(db, draft_invoice)]


def test_a_send_not_interrupted_still_emails_once(db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    seen: list[str] = []
    result = send_invoice(draft_invoice, STAFF, options=SendOptions(after_step=seen.append))

    assert result.ok and result.invoice_status == "open" and "was emailed to" in result.message
    assert seen == ["customer", "invoice", "lines", "finalize", "email", "complete"]
    assert len(crm_sandbox.control.resend_emails()) == 1
