"""The invoice's default payment, as Stripe makes it: one InvoicePayment (is_default) and one
payment intent at finalize, reused by every attempt on the hosted page and cancelled by a
void; the hosted page takes the amount due only. The CRM records that payment intent right
after finalize and matches payment_intent.* events by it alone. Real Postgres, the real Send
workflow and sidecar over HTTP, the sandbox as Stripe."""

from __future__ import annotations

from typing import Any

import psycopg

from sandbox.testing import RunningSandbox
from tests import money_helpers
from tests import sandbox_helpers as helpers
from tests.fixtures.workflow import MakeInvoice
from tests.money_helpers import invoice_row, sent_invoice, settled
from tests.reconcile_helpers import wait_until
from tests.sandbox_helpers import make_open_invoice, stripe_client

Conn = psycopg.Connection[dict[str, Any]]
# Fixtures shared through the helpers modules.
wired = money_helpers.wired
sandbox = helpers.sandbox
sbx = helpers.sbx


def test_default_payment_made_at_finalize_reused_by_every_attempt_and_cancelled_by_void(
        sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    inv = make_open_invoice(client, unit_amount=10_000)
    payments = client.v1.invoice_payments.list({"invoice": inv.id}).data
    assert [(p.is_default, p.status, p.amount_requested, p.payment.type) for p in payments] == [
        (True, "open", 10_000, "payment_intent")]
    default_pi = payments[0].payment.payment_intent

    declined = sandbox.control.pay_invoice(inv.id, fail=True, decline_code="insufficient_funds")
    assert declined["error"]["payment_intent"]["id"] == default_pi
    pi = client.v1.payment_intents.retrieve(default_pi)
    assert (pi.status, pi.last_payment_error.code) == ("requires_payment_method", "card_declined")
    first_charge = pi.latest_charge

    assert sandbox.control.pay_invoice(inv.id)["invoice"]["status"] == "paid"
    pi = client.v1.payment_intents.retrieve(default_pi)
    assert (pi.status, pi.amount_received) == ("succeeded", 10_000)
    assert pi.latest_charge != first_charge, "each attempt is its own charge on the same payment intent"
    assert [(p.payment.payment_intent, p.status) for p in
            client.v1.invoice_payments.list({"invoice": inv.id}).data] == [(default_pi, "paid")]

    to_void = make_open_invoice(client, unit_amount=5_000)
    voided_pi = client.v1.invoice_payments.list({"invoice": to_void.id}).data[0].payment.payment_intent
    client.v1.invoices.void_invoice(to_void.id)
    pi = client.v1.payment_intents.retrieve(voided_pi)
    assert (pi.status, pi.cancellation_reason) == ("canceled", "void_invoice")
    assert client.v1.invoice_payments.list({"invoice": to_void.id}).data[0].status == "canceled"
    canceled = client.v1.events.list({"type": "payment_intent.canceled"}).data
    assert [e.data.object.id for e in canceled] == [voided_pi]


def test_hosted_page_takes_the_amount_due_only_default_payment(sandbox: RunningSandbox) -> None:
    """Stripe's hosted invoice page has no amount field: the customer pays what is due.
    Checked by hand: the old page (sandbox/pages.py before this change) showed an amount field
    and took the part payment below (303); this test failed on it."""
    client = stripe_client(sandbox)
    inv = make_open_invoice(client, unit_amount=10_000)
    page = f"{sandbox.base_url}/i/{inv.id}"
    assert 'name="amount"' not in sandbox.control.http.get(page).text

    for path in ("pay", "pay_by_bank"):
        resp = sandbox.control.http.post(f"{page}/{path}", data={"card_number": "4242424242424242",
                                                                  "amount": "40.00"})
        assert resp.status_code == 400 and "amount due only" in resp.text, resp.text
    after = client.v1.invoices.retrieve(inv.id)
    assert (after.amount_paid, after.amount_remaining) == (0, 10_000)

    resp = sandbox.control.http.post(f"{page}/pay", data={"card_number": "4242424242424242", "amount": "100.00"})
    assert resp.status_code == 303, resp.text
    assert client.v1.invoices.retrieve(inv.id).status == "paid"


def test_bank_payment_matched_by_default_payment_intent_not_its_description(
        db: Conn, wired: RunningSandbox, make_invoice: MakeInvoice) -> None:
    """Two open invoices of one customer for the same amount, and a payment intent whose
    description names neither: only the default payment intent recorded at Send ties the bank
    payment to its invoice. Checked by hand: with the old matching (description text, else the
    customer's only open invoice with that amount) the processing event stayed unmatched and
    the wait below timed out."""
    first = sent_invoice(db, make_invoice)
    customer = db.execute("SELECT customer_id FROM crm.invoices WHERE id = %s", (first["invoice_id"],)).fetchone()
    assert customer is not None
    second = sent_invoice(db, make_invoice, customer_id=customer["customer_id"])
    assert first["amount"] == second["amount"]
    links = {r["invoice_id"]: r["stripe_payment_intent_id"] for r in db.execute(
        "SELECT invoice_id, stripe_payment_intent_id FROM crm.payment_intent_links").fetchall()}
    assert set(links) == {first["invoice_id"], second["invoice_id"]}, "recorded at Send, before any payment"

    resp = wired.control.http.post(f"{wired.base_url}/i/{second['stripe_invoice_id']}/pay_by_bank", data={})
    assert resp.status_code == 303, resp.text
    processing = [e for e in wired.control.events() if e["type"] == "payment_intent.processing"]
    assert len(processing) == 1
    pi = processing[0]["data"]["object"]
    assert pi["id"] == links[second["invoice_id"]]
    number = db.execute("SELECT stripe_invoice_number FROM crm.invoices WHERE id = %s",
                        (second["invoice_id"],)).fetchone()
    assert number is not None and number["stripe_invoice_number"] not in (pi["description"] or "")

    wait_until(lambda: invoice_row(db, second["invoice_id"])["processing_payment_intent_id"] == pi["id"],
               what="the second invoice processing")
    settled(wired)
    assert invoice_row(db, first["invoice_id"])["processing_payment_intent_id"] is None
    ledger = db.execute("SELECT outcome, invoice_id FROM crm.stripe_events WHERE type = 'payment_intent.processing'"
                        ).fetchall()
    assert ledger == [{"outcome": "applied", "invoice_id": second["invoice_id"]}]

    wired.control.settle_bank_debit(pi["id"])
    wait_until(lambda: invoice_row(db, second["invoice_id"])["status"] == "paid", what="the second invoice paid")
    settled(wired)
    assert invoice_row(db, first["invoice_id"])["status"] == "open"
