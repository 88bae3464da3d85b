"""Issue 20, item 6, third part: a credit note issued after sending (from Stripe's Dashboard)
lowers Stripe's `amount_remaining`; the CRM's outstanding follows it, in Stripe's order: a stale
snapshot from before the credit note does not raise it again, and the customer then pays only
the rest. The sandbox issues the credit note over HTTP; its events reach the real sidecar (the stale
snapshot goes through the same SQL function directly).

Checked by hand: with db/functions/60_stripe_events.sql from main, the first wait_until times out
(the CRM kept the amount due it sent).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg

from crm.config.settings import load_settings
from crm.stripe.gateway import StripeGateway, stripe_target
from db.queries_invoices import InvoiceFilter, invoice_payments, invoice_timeline, list_invoices
from db.stripe_events import apply_event
from sandbox.testing import RunningSandbox
from tests import money_helpers
from tests import stripe_payloads as sp
from tests.fixtures.workflow import MakeInvoice
from tests.money_helpers import invoice_row, sent_invoice, settled
from tests.reconcile_helpers import wait_until
from ui.timeline_text import timeline

Conn = psycopg.Connection[dict[str, Any]]
wired = money_helpers.wired  # the fixture


def _remaining(db: Conn, invoice_id: int) -> int:
    row = next(r for r in list_invoices(db, InvoiceFilter(), date.today()) if r["id"] == invoice_id)
    return int(row["amount_remaining_cents"])


def test_stripe_order_credit_note_after_sending_lowers_the_crms_outstanding(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    inv = sent_invoice(db, make_invoice)
    due, credit = int(inv["amount"]), 2_500
    stripe = StripeGateway(stripe_target(load_settings(db)))
    stale = sp.invoice(str(inv["stripe_invoice_id"]), amount_due=due)  # what Stripe said before the credit note

    note = stripe.client.v1.credit_notes.create({"invoice": str(inv["stripe_invoice_id"]), "amount": credit,
                                                 "reason": "order_change"})
    assert note.type == "pre_payment"
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["amount_due_cents"] == due - credit,
               what="the CRM's amount due lowered by the credit note")
    settled(wired)
    at_stripe = stripe.retrieve_invoice(str(inv["stripe_invoice_id"]))
    assert at_stripe["amount_remaining"] == due - credit == _remaining(db, inv["invoice_id"])
    assert any(e.what.startswith("Credit note: now due")
               for e in timeline(invoice_timeline(db, inv["invoice_id"]), "usd"))

    # Delivered late, the snapshot from before the credit note changes nothing.
    late = apply_event(db, sp.event("invoice.updated", stale), "test")
    assert late.outcome in ("ignored", "applied"), late
    assert _remaining(db, inv["invoice_id"]) == due - credit

    assert wired.control.pay_invoice(inv["stripe_invoice_id"])["invoice"]["status"] == "paid"
    wait_until(lambda: invoice_row(db, inv["invoice_id"])["status"] == "paid", what="paid")
    settled(wired)
    row = invoice_row(db, inv["invoice_id"])
    assert (row["amount_due_cents"], row["amount_paid_cents"]) == (due - credit, due - credit)
    assert [(p["method"], p["amount_cents"]) for p in invoice_payments(db, inv["invoice_id"])] == [
        ("stripe", due - credit)], "the credit is not a payment, and nothing was paid out of band"
