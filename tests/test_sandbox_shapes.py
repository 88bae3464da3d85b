"""The sandbox tells the truth about Stripe's shapes: every object it returns and every event
payload it delivers is validated against the pinned stripe-python's own typed classes
(tests/stripe_shapes.py: fields, types, Literal enums, nullability, nested classes).

A realistic flow runs through the sandbox with the real client: webhook endpoint, customer,
invoice, lines, finalize, pay on the hosted page, refund twice, a pending refund canceled and a
succeeded one failed later (with their failure reasons), declines with two test cards.
Every response body (as sent on the wire) and every webhook payload delivered is checked.

To see it fail by hand: add a field real Stripe does not send to a sandbox object, e.g. in
sandbox/stripe_objects.py `charge()` add `"bogus_field": 1,` (or put `"refunds": {...}` back
on charges, or make a charge's `"status"` `"done"`), then run
`.venv/bin/python -m pytest tests/test_sandbox_shapes.py -q -p no:cacheprovider`: the test
names the object, the path and the reason, e.g.
`charge.bogus_field: not a field of stripe.Charge (stripe-python 16.1.0)`.
"""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from sandbox.testing import RunningSandbox
from tests import sandbox_helpers as helpers
from tests.sandbox_helpers import Receiver, stripe_client
from tests.stripe_shapes import shape_problems

receiver = helpers.receiver
sandbox = helpers.sandbox
sbx = helpers.sbx


def wire(obj: Any) -> dict[str, Any]:
    """The JSON body Stripe (the sandbox) sent for this object, not stripe-python's view of it."""
    response = obj.last_response
    assert response is not None
    data: dict[str, Any] = response.data
    return data


def pay_on_hosted_page(sbx: RunningSandbox, url: str, card: str) -> httpx.Response:
    return httpx.post(f"{url}/pay", data={"card_number": card}, follow_redirects=False, trust_env=False)


def walk_the_money_flow(sbx: RunningSandbox, receiver: Receiver) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    client = stripe_client(sbx)
    seen: list[tuple[str, Any]] = []
    ep = client.v1.webhook_endpoints.create({"url": receiver.url, "enabled_events": ["*"],
                                             "api_version": stripe.api_version})
    seen.append(("webhook_endpoints.create", ep))
    seen.append(("webhook_endpoints.update", client.v1.webhook_endpoints.update(
        ep.id, {"enabled_events": ["*"], "description": "crm"})))
    cus = client.v1.customers.create({"email": "pat@example.com", "name": "Pat Doe"})
    seen.append(("customers.create", cus))

    invoices = []
    for amount in (10_000, 5_000, 7_000):
        inv = client.v1.invoices.create({
            "customer": cus.id, "collection_method": "send_invoice", "days_until_due": 7, "auto_advance": False,
            "pending_invoice_items_behavior": "exclude", "currency": "usd", "metadata": {"crm_invoice_id": "1"}})
        seen.append(("invoices.create", inv))
        seen.append(("invoices.add_lines", client.v1.invoices.add_lines(inv.id, {"lines": [{
            "description": "Furnace repair", "quantity": 1,
            "price_data": {"currency": "usd", "unit_amount": amount, "product_data": {"name": "Furnace repair"}}}]})))
        fin = client.v1.invoices.finalize_invoice(inv.id, {"auto_advance": False})
        seen.append(("invoices.finalize_invoice", fin))
        invoices.append(fin)

    paid, declined, insufficient = invoices
    assert pay_on_hosted_page(sbx, paid.hosted_invoice_url, "4242 4242 4242 4242").status_code == 303
    assert pay_on_hosted_page(sbx, declined.hosted_invoice_url, "4000 0000 0000 0002").status_code == 402
    assert pay_on_hosted_page(sbx, insufficient.hosted_invoice_url, "4000000000009995").status_code == 402

    seen.append(("invoices.retrieve", client.v1.invoices.retrieve(paid.id)))
    payments = client.v1.invoice_payments.list({"invoice": paid.id})
    seen.append(("invoice_payments.list", payments))
    inpay = next(p for p in payments.data if p.status == "paid")
    pi = client.v1.payment_intents.retrieve(inpay.payment.payment_intent)
    seen.append(("payment_intents.retrieve", pi))
    charge = client.v1.charges.retrieve(pi.latest_charge)
    seen.append(("charges.retrieve", charge))
    txn = client.v1.balance_transactions.retrieve(charge.balance_transaction)
    seen.append(("balance_transactions.retrieve", txn))
    for amount in (3_000, 2_000):
        refund = client.v1.refunds.create({"payment_intent": pi.id, "amount": amount})
        seen.append(("refunds.create", refund))
    seen.append(("refunds.retrieve", client.v1.refunds.retrieve(refund.id)))
    refund = client.v1.refunds.retrieve(refund.id)
    assert refund.balance_transaction
    seen.append(("balance_transactions.retrieve(refund)", client.v1.balance_transactions.retrieve(
        str(refund.balance_transaction))))
    seen.append(("charges.retrieve(refunded)", client.v1.charges.retrieve(charge.id)))
    # Refunds are asynchronous: one pending (then canceled), one succeeded that fails later.
    sbx.control.set_refunds(card_delay_s=86_400)
    pending = client.v1.refunds.create({"payment_intent": pi.id, "amount": 1_000})
    assert pending.status == "pending"
    seen.append(("refunds.create(pending)", pending))
    assert sbx.control.settle_refund(pending.id, "canceled", "merchant_request")["status"] == "canceled"
    assert sbx.control.settle_refund(refund.id, "failed", "expired_or_canceled_card")["status"] == "failed"
    failed = client.v1.refunds.retrieve(refund.id)
    assert failed.failure_reason == "expired_or_canceled_card" and failed.failure_balance_transaction
    seen.append(("refunds.retrieve(failed)", failed))
    seen.append(("balance_transactions.retrieve(refund failure)", client.v1.balance_transactions.retrieve(
        str(failed.failure_balance_transaction))))
    seen.append(("refunds.list", client.v1.refunds.list({"charge": charge.id})))
    for failed in (declined, insufficient):
        for p in client.v1.invoice_payments.list({"invoice": failed.id}).data:
            seen.append(("payment_intents.retrieve(declined)", client.v1.payment_intents.retrieve(
                p.payment.payment_intent)))
    seen.append(("events.list", client.v1.events.list({"limit": 100})))
    seen.append(("webhook_endpoints.retrieve", client.v1.webhook_endpoints.retrieve(ep.id)))

    events_total = len(client.v1.events.list({"limit": 100}).data)
    return [(what, wire(obj)) for what, obj in seen], events_total


def test_every_sandbox_object_and_webhook_payload_has_stripes_shape(sandbox: RunningSandbox,
                                                                   receiver: Receiver) -> None:
    responses, events_total = walk_the_money_flow(sandbox, receiver)
    receiver.wait(lambda got: len(got) >= events_total)
    delivered = receiver.events()

    problems = [p for what, body in responses for p in shape_problems(body, what)]
    problems += [p for evt in delivered for p in shape_problems(evt, f"webhook {evt.get('type')}")]

    assert problems == [], "\n".join(problems)
    types = {e["type"] for e in delivered}
    # The flow covered what the CRM reads, so the check above is not vacuous.
    assert {"invoice.finalized", "invoice_payment.paid", "invoice.paid", "charge.refunded", "refund.created",
            "refund.updated", "refund.failed", "charge.refund.updated", "payment_intent.payment_failed",
            "invoice.payment_failed"} <= types
    declines = [e["data"]["object"]["last_payment_error"] for e in delivered
                if e["type"] == "payment_intent.payment_failed"]
    assert sorted(d["decline_code"] for d in declines) == ["generic_decline", "insufficient_funds"]
    assert all(d["code"] == "card_declined" and d["message"] for d in declines)
    charges = [e["data"]["object"] for e in delivered if e["data"]["object"]["object"] == "charge"]
    assert charges and all("refunds" not in c for c in charges)


def test_the_shape_check_catches_unknown_fields_enum_values_and_nulls() -> None:
    good = {"id": "re_1", "object": "refund", "amount": 100, "balance_transaction": None, "charge": "ch_1",
            "created": 1, "currency": "usd", "metadata": {}, "payment_intent": "pi_1", "reason": None,
            "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
            "transfer_reversal": None}
    base = shape_problems(good)
    assert shape_problems({**good, "bogus_field": 1}) == [
        *base, "refund.bogus_field: not a field of stripe.Refund (stripe-python " + stripe.VERSION + ")"]
    # Refund.status is a plain str in stripe-python; Charge.status is an enum (Literal).
    assert any("charge.status: 'done' is not one of" in p for p in shape_problems({"object": "charge",
                                                                                  "status": "done"}))
    assert any("amount: null" in p for p in shape_problems({**good, "amount": None}))
    charge_with_refunds = shape_problems({"object": "charge", "refunds": {"object": "list", "data": [],
                                                                            "has_more": False, "url": "/v1/x"}})
    assert any("only when expanded" in p for p in charge_with_refunds)
