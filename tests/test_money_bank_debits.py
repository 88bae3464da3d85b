"""Bank debits (ACH): a payment Stripe says is processing shows the invoice as Processing and
pauses its reminders (one already at Resend is cancelled there and kept for later); the
invoice is Paid only when Stripe says so; a failed debit opens it again, flagged with
Stripe's reason, and its reminders resume. Real Postgres, the real sidecar over HTTP, the
sandbox as Stripe and Resend, the real Send workflow."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg

from crm.reminders import dispatch as rd
from db.queries_invoices import InvoiceFilter, list_invoices
from db.reminders import queue_due
from sandbox.testing import RunningSandbox
from tests import money_helpers
from tests.fixtures.workflow import MakeInvoice
from tests.money_helpers import (
    hand_first_reminder_to_resend,
    invoice_row,
    reminder_emails,
    sent_invoice,
    settled,
)
from tests.reconcile_helpers import wait_until
from tests.test_reminders_support import gateway, reminders_of, test_now

Conn = psycopg.Connection[dict[str, Any]]
wired = money_helpers.wired  # the fixture


def shown_status(db: Conn, invoice_id: int) -> str:
    rows = [r for r in list_invoices(db, InvoiceFilter(), date.today()) if r["id"] == invoice_id]
    return str(rows[0]["status"])


def start_bank_payment(db: Conn, sbx: RunningSandbox, inv: dict[str, Any]) -> dict[str, Any]:
    pi = sbx.control.pay_by_bank(inv["stripe_invoice_id"])
    assert pi["status"] == "processing", pi
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["processing_payment_intent_id"] == pi["id"],
               what="the invoice processing")
    settled(sbx)
    return pi


def test_bank_payment_is_processing_with_reminders_paused_then_paid_when_it_settles(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    now = test_now()
    inv = sent_invoice(db, make_invoice)
    at_resend = hand_first_reminder_to_resend(db, inv["invoice_id"], now)

    pi = start_bank_payment(db, wired, inv)

    assert shown_status(db, inv["invoice_id"]) == "processing"
    row = invoice_row(db, inv["invoice_id"])
    assert (row["status"], row["processing_amount_cents"], row["amount_paid_cents"]) == ("open", inv["amount"], 0)
    # The reminder Resend held is cancelled there; its slot waits for after the debit.
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["done"] == 1
    assert [e["last_event"] for e in reminder_emails(wired, inv["invoice_id"])] == ["canceled"]
    slot = sorted((r for r in reminders_of(db, inv["invoice_id"]) if r["offset_days"] == at_resend["offset_days"]),
                  key=lambda r: r["revision"])
    assert [(r["status"], r["cancel_reason"]) for r in slot] == [("cancelled", "payment_processing"),
                                                                ("pending", None)]
    # While processing, nothing is queued or handed to Resend, however due it is.
    for later in (now, now + timedelta(hours=3), now + timedelta(days=2)):
        assert queue_due(db, later) == 0
        assert rd.dispatch_queued(db, gateway(db), later)["scheduled"] == 0
    assert len(reminder_emails(wired, inv["invoice_id"])) == 1

    wired.control.settle_bank_debit(pi["id"])
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["status"] == "paid", what="the invoice paid")
    settled(wired)

    assert shown_status(db, inv["invoice_id"]) == "paid"
    row = invoice_row(db, inv["invoice_id"])
    assert (row["amount_paid_cents"], row["processing_payment_intent_id"]) == (inv["amount"], None)
    assert db.execute("SELECT stripe_payment_intent_id FROM crm.payments WHERE invoice_id = %s",
                      (inv["invoice_id"],)).fetchall() == [{"stripe_payment_intent_id": pi["id"]}]
    assert all(r["status"] == "cancelled" for r in reminders_of(db, inv["invoice_id"]))
    moves = db.execute("SELECT from_status, to_status, detail ->> 'event_type' AS type FROM crm.audit_log "
                       "WHERE entity = 'invoice' AND entity_id = %s AND from_status IS DISTINCT FROM to_status "
                       "ORDER BY id", (inv["invoice_id"],)).fetchall()
    assert [(m["from_status"], m["to_status"]) for m in moves][-2:] == [("open", "processing"), ("open", "paid")]


def test_failed_bank_payment_opens_the_invoice_again_flagged_and_reminders_resume(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    now = test_now()
    inv = sent_invoice(db, make_invoice)
    at_resend = hand_first_reminder_to_resend(db, inv["invoice_id"], now)
    pi = start_bank_payment(db, wired, inv)
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["done"] == 1

    wired.control.settle_bank_debit(pi["id"], fail=True)
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["processing_payment_intent_id"] is None,
               what="the debit failed")
    settled(wired)

    row = invoice_row(db, inv["invoice_id"])
    assert (row["status"], row["attention"], row["amount_paid_cents"]) == ("open", "payment_failed", 0)
    assert "insufficient funds" in row["last_payment_error"]
    assert shown_status(db, inv["invoice_id"]) == "open"
    audit = db.execute("SELECT from_status, to_status, detail FROM crm.audit_log WHERE entity = 'invoice' "
                       "AND entity_id = %s AND detail ->> 'event_type' = 'payment_intent.payment_failed'",
                       (inv["invoice_id"],)).fetchall()
    assert [(a["from_status"], a["to_status"]) for a in audit] == [("processing", "open")]
    assert "insufficient funds" in audit[0]["detail"]["payment_error"]
    # Reminders resume: the kept slot is queued and handed to Resend again, as a new email.
    assert queue_due(db, now) == 1
    assert rd.dispatch_queued(db, gateway(db), now)["scheduled"] == 1
    slot = sorted((r for r in reminders_of(db, inv["invoice_id"]) if r["offset_days"] == at_resend["offset_days"]),
                  key=lambda r: r["revision"])
    assert [r["status"] for r in slot] == ["cancelled", "scheduled"]
    assert [e["last_event"] for e in reminder_emails(wired, inv["invoice_id"])] == ["canceled", "scheduled"]


def test_bank_payment_offered_on_the_hosted_page_because_send_lists_us_bank_account(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = sent_invoice(db, make_invoice)
    created = [r for r in wired.control.requests(service="stripe", method="POST", path="/v1/invoices")]
    assert len(created) == 1

    page = wired.control.http.get(f"{wired.base_url}/i/{inv['stripe_invoice_id']}").text

    assert "Pay by bank (ACH)" in page
    from tests.send_helpers import stripe_client
    stripe_inv = stripe_client(wired).v1.invoices.retrieve(inv["stripe_invoice_id"])
    assert stripe_inv.payment_settings.payment_method_types == ["card", "us_bank_account"]  # type: ignore[union-attr]
