"""Partial payments: an invoice paid in parts shows paid, remaining and each payment; the
next reminder asks for the remaining amount, and one already handed to Resend with the old
amount is cancelled there and re-queued with the new one. Real Postgres, the Resend sandbox
over HTTP, Stripe's events applied through the same SQL function the webhook uses (and the
hosted page over HTTP for the end-to-end case)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg

from crm.reminders import dispatch as rd
from db.queries_invoices import InvoiceFilter, get_invoice, invoice_payments, invoice_timeline, list_invoices
from db.reminders import queue_due
from db.stripe_events import apply_event
from sandbox.testing import RunningSandbox
from tests import money_helpers
from tests import stripe_payloads as sp
from tests.fixtures.workflow import MakeInvoice
from tests.money_helpers import invoice_row, reminder_emails, sent_invoice, settled
from tests.reconcile_helpers import wait_until
from tests.test_reminders_support import add_reminders, days, gateway, make_invoice, reminders_of, set_send_at, test_now

Conn = psycopg.Connection[dict[str, Any]]
wired = money_helpers.wired  # the fixture


def partial_payment(db: Conn, inv: dict[str, Any], amount: int) -> None:
    """invoice_payment.paid then invoice.updated for part of the invoice, as Stripe sends them."""
    paid_before = invoice_row(db, inv["invoice_id"])["amount_paid_cents"]
    pay = sp.invoice_payment(inv["stripe_invoice_id"], sp.stripe_id("pi"), amount)
    assert apply_event(db, sp.event("invoice_payment.paid", pay), "test").outcome == "applied"
    updated = sp.invoice(inv["stripe_invoice_id"], amount_due=inv["amount"], amount_paid=paid_before + amount,
                         crm_invoice_id=inv["invoice_id"])
    apply_event(db, sp.event("invoice.updated", updated), "test")


def test_partial_payment_requeues_the_reminder_at_resend_with_the_remaining_amount(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv = make_invoice(db, due=(now - days(7)).date(), amount=25_000)
    rows = add_reminders(db, inv["invoice_id"], (now - days(7)).date())
    set_send_at(db, rows[0]["id"], now + timedelta(hours=3))
    assert queue_due(db, now) == 1
    assert rd.dispatch_queued(db, gateway(db), now)["scheduled"] == 1
    (old_email,) = reminder_emails(crm_sandbox, inv["invoice_id"])
    assert "$250.00" in old_email["text"]

    partial_payment(db, inv, 10_000)

    old = reminders_of(db, inv["invoice_id"])[0]
    assert (old["status"], old["resend_cancel"], old["cancel_reason"]) == ("scheduled", "requested", "amount_changed")
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["done"] == 1
    assert queue_due(db, now + timedelta(minutes=1)) == 1
    assert rd.dispatch_queued(db, gateway(db), now + timedelta(minutes=1))["scheduled"] == 1

    emails = reminder_emails(crm_sandbox, inv["invoice_id"])
    assert [e["last_event"] for e in emails] == ["canceled", "scheduled"]
    assert "$150.00" in emails[1]["text"] and "$250.00" not in emails[1]["text"]
    assert "$150.00" in emails[1]["html"]
    slot = sorted((r for r in reminders_of(db, inv["invoice_id"]) if r["offset_days"] == rows[0]["offset_days"]),
                  key=lambda r: r["revision"])
    assert [(r["revision"], r["status"], r["cancel_reason"]) for r in slot] == [
        (0, "cancelled", "amount_changed"), (1, "scheduled", None)]
    keys = db.execute("SELECT idempotency_key FROM crm.email_messages WHERE invoice_id = %s ORDER BY id",
                      (inv["invoice_id"],)).fetchall()
    assert len({k["idempotency_key"] for k in keys}) == 2, "the new request goes under a new key"

    # The rest is paid: the replacement is cancelled at Resend too, nothing goes out.
    partial_payment(db, inv, 15_000)
    apply_event(db, sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_due=25_000,
                                                        amount_paid=25_000)), "test")
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=2))["done"] == 1
    assert [e["last_event"] for e in reminder_emails(crm_sandbox, inv["invoice_id"])] == ["canceled", "canceled"]


def test_partial_payment_too_late_to_cancel_at_resend_does_not_send_a_second_reminder(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv = make_invoice(db, due=(now - days(7)).date(), amount=25_000)
    rows = add_reminders(db, inv["invoice_id"], (now - days(7)).date())
    set_send_at(db, rows[0]["id"], now + timedelta(hours=3))
    queue_due(db, now)
    rd.dispatch_queued(db, gateway(db), now)
    crm_sandbox.control.flush_emails()  # Resend sent it before the cancel arrived

    partial_payment(db, inv, 10_000)
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["too_late"] == 1

    slot = sorted((r for r in reminders_of(db, inv["invoice_id"]) if r["offset_days"] == rows[0]["offset_days"]),
                  key=lambda r: r["revision"])
    assert [(r["status"], r["cancel_reason"]) for r in slot] == [
        ("sent", "amount_changed"), ("cancelled", "superseded")]
    assert queue_due(db, now + timedelta(minutes=1)) == 0


def test_partial_payments_show_paid_remaining_and_each_payment(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = sent_invoice(db, make_invoice)
    page = f"{wired.base_url}/i/{inv['stripe_invoice_id']}"

    # Part payments come from the business (Stripe's hosted page takes the amount due only).
    for amount in (10_000, 5_050):
        assert wired.control.pay_invoice(inv["stripe_invoice_id"], amount=amount)["error"] is None
    wait_until(lambda: len(invoice_payments(db, inv["invoice_id"])) == 2, what="both payments recorded")
    settled(wired)

    row = get_invoice(db, inv["invoice_id"])
    assert row is not None
    assert (row["status"], row["shown_status"], row["amount_paid_cents"], row["amount_remaining_cents"]) == (
        "open", "open", 15_050, inv["amount"] - 15_050)
    # Both were paid within the same second and their events delivered at once: either order.
    assert sorted(p["amount_cents"] for p in invoice_payments(db, inv["invoice_id"])) == [5_050, 10_000]
    listed = next(r for r in list_invoices(db, InvoiceFilter(), date.today()) if r["id"] == inv["invoice_id"])
    assert (listed["amount_paid_cents"], listed["amount_remaining_cents"]) == (15_050, inv["amount"] - 15_050)
    whats = [t["what"] for t in invoice_timeline(db, inv["invoice_id"])]
    assert "payment of 100.00 received" in whats and "payment of 50.50 received" in whats
    assert "Amount due: <strong id=\"amount-remaining\">$" in wired.control.http.get(page).text
