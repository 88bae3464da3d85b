# The libraries type most response fields as Optional/unions; these tests assert the values instead.
# mypy: disable-error-code="union-attr,arg-type,operator,index,typeddict-item,return-value"
"""Stripe emulator through real HTTP with the real stripe-python client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import stripe

from sandbox.testing import RunningSandbox, run_sandbox
from tests import sandbox_helpers as helpers
from tests.sandbox_helpers import LIVE_KEY, fixture_keys, make_open_invoice, stripe_client

# Fixtures shared through the helpers module.
sandbox = helpers.sandbox
sbx = helpers.sbx


def test_invoice_flow_with_idempotency_keys_matches_stripe_shapes(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    cus = client.v1.customers.create({"email": "pat@example.com", "name": "Pat"},
                                     {"idempotency_key": "crm-cus-1"})
    inv = client.v1.invoices.create(
        {"customer": cus.id, "collection_method": "send_invoice", "days_until_due": 14,
         "auto_advance": False, "pending_invoice_items_behavior": "exclude", "currency": "usd",
         "metadata": {"crm_invoice_id": "42"}, "description": "Job #42"},
        {"idempotency_key": "crm-inv-42"})
    assert inv.status == "draft" and inv.hosted_invoice_url is None and inv.number is None
    inv = client.v1.invoices.add_lines(inv.id, {"lines": [
        {"description": "Labor", "quantity": 2,
         "price_data": {"currency": "usd", "unit_amount": 9950, "product_data": {"name": "Labor"}}},
        {"description": "Filter", "quantity": 1,
         "price_data": {"currency": "usd", "unit_amount": 1999, "product_data": {"name": "Filter"}}},
    ]}, {"idempotency_key": "crm-lines-42"})
    assert inv.total == 2 * 9950 + 1999
    inv = client.v1.invoices.finalize_invoice(inv.id, {"auto_advance": False},
                                              {"idempotency_key": "crm-fin-42"})
    assert inv.status == "open"
    assert inv.number and inv.number.endswith("-0001")
    assert inv.amount_due == inv.amount_remaining == 21899 and inv.amount_paid == 0
    assert inv.hosted_invoice_url.startswith(sandbox.base_url + "/")
    assert inv.due_date >= inv.status_transitions.finalized_at + 14 * 86400
    assert inv.metadata["crm_invoice_id"] == "42"
    body = inv.to_dict()
    for field in ("charge", "payment_intent", "paid"):
        assert field not in body, f"{field} was removed from invoices in 2025-03-31"
    # The fixture file still lists top-level `subscription`, which the pinned stripe-python's
    # Invoice no longer declares (it moved to parent.subscription_details); the shape test
    # (tests/test_sandbox_shapes.py) holds the sandbox to the library's types.
    assert fixture_keys("invoice") - {"subscription"} <= set(body) and "subscription" not in body
    assert fixture_keys("customer") <= set(cus.to_dict())
    assert fixture_keys("line_item") <= set(body["lines"]["data"][0])
    pdf = httpx.get(inv.invoice_pdf)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_idempotent_replay_and_key_reuse_with_other_params(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    first = client.v1.customers.create({"email": "a@example.com"}, {"idempotency_key": "same"})
    again = client.v1.customers.create({"email": "a@example.com"}, {"idempotency_key": "same"})
    assert again.id == first.id
    assert len(client.v1.customers.list({"email": "a@example.com"}).data) == 1
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create({"email": "other@example.com"}, {"idempotency_key": "same"})
    assert err.value.http_status == 400
    replayed = [r for r in sandbox.control.requests(service="stripe", path="/v1/customers", method="POST")
                if r["idempotent_replayed"]]
    assert len(replayed) == 1


def test_list_customers_by_exact_email_and_modes_are_separate(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    wanted = client.v1.customers.create({"email": "jo@example.com"})
    client.v1.customers.create({"email": "Jo@example.com"})
    client.v1.customers.create({"email": "jo@example.co"})
    found = client.v1.customers.list({"email": "jo@example.com"}).data
    assert [c.id for c in found] == [wanted.id]
    assert wanted.livemode is False
    live = stripe_client(sandbox, LIVE_KEY)
    assert live.v1.customers.list({"email": "jo@example.com"}).data == []
    with pytest.raises(stripe.InvalidRequestError) as err:
        live.v1.customers.retrieve(wanted.id)
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert live.v1.customers.create({"email": "jo@example.com"}).livemode is True


def test_bad_or_missing_key_is_401(sandbox: RunningSandbox) -> None:
    with pytest.raises(stripe.AuthenticationError):
        stripe_client(sandbox, "pk_test_nope").v1.customers.list()
    resp = httpx.get(sandbox.base_url + "/v1/customers")
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "invalid_request_error"


def test_validation_errors_look_like_stripe(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.create({"customer": "cus_missing", "collection_method": "send_invoice",
                                   "days_until_due": 3})
    assert err.value.code == "resource_missing" and err.value.param == "customer"
    cus = client.v1.customers.create({"email": "v@example.com"})
    with pytest.raises(stripe.InvalidRequestError, match="days_until_due"):
        client.v1.invoices.create({"customer": cus.id, "collection_method": "send_invoice"})
    inv = client.v1.invoices.create({"customer": cus.id, "collection_method": "send_invoice",
                                     "days_until_due": 3})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.add_lines(inv.id, {"lines": [{"description": "x", "price_data": {
            "currency": "usd", "unit_amount": -5, "product_data": {"name": "x"}}}]})
    assert err.value.code == "parameter_invalid_integer"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"emial": "typo@example.com"})
    assert err.value.code == "parameter_unknown"
    empty = client.v1.invoices.finalize_invoice(inv.id)
    assert empty.total == 0 and empty.status == "paid"  # Stripe auto-pays $0 invoices.
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.add_lines(inv.id, {"lines": [{"description": "late", "amount": 100}]})
    assert err.value.code == "invoice_not_editable"


def test_partial_payment_then_full_payment_and_refunds(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    inv = make_open_invoice(client, unit_amount=10000)
    out = sandbox.control.pay_invoice(inv.id, amount=4000)
    assert out["error"] is None and out["invoice"]["status"] == "open"
    inv = client.v1.invoices.retrieve(inv.id)
    assert (inv.amount_paid, inv.amount_remaining, inv.status) == (4000, 6000, "open")
    types = [e.type for e in client.v1.events.list({"limit": 100}).data]
    assert "invoice_payment.paid" in types and "invoice.paid" not in types

    failed = sandbox.control.pay_invoice(inv.id, fail=True)
    assert failed["error"]["code"] == "card_declined"
    assert client.v1.events.list({"type": "invoice.payment_failed"}).data

    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(inv.id, {"payment_method": "pm_card_chargeDeclined"})
    paid = client.v1.invoices.pay(inv.id)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 10000, 0)
    inv = client.v1.invoices.retrieve(inv.id, {"expand": ["payments"]})
    pis = [p.payment.payment_intent for p in inv.payments.data if p.status == "paid"]
    # The part payment had its own pair; the declines and the final payment reused the default one.
    assert len(pis) == 2
    assert [p.is_default for p in inv.payments.data].count(True) == 1 and len(inv.payments.data) == 2
    pi = client.v1.payment_intents.retrieve(pis[0])
    charge = client.v1.charges.retrieve(pi.latest_charge, {"expand": ["balance_transaction"]})
    fee = (charge.amount * 29 + 500) // 1000 + 30
    assert charge.balance_transaction.fee == fee
    assert charge.balance_transaction.net == charge.amount - fee

    partial = client.v1.refunds.create({"payment_intent": pi.id, "amount": 100})
    assert partial.status == "succeeded" and partial.amount == 100
    full = client.v1.refunds.create({"charge": charge.id})
    assert full.amount == charge.amount - 100
    assert client.v1.charges.retrieve(charge.id).refunded is True
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create({"charge": charge.id})
    assert err.value.code == "charge_already_refunded"
    types = [e.type for e in client.v1.events.list({"types": ["charge.refunded", "refund.created",
                                                              "refund.updated"]}).auto_paging_iter()]
    assert types.count("charge.refunded") == 2 and types.count("refund.created") == 2


def test_events_listing_filters_and_pagination(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    inv = make_open_invoice(client)
    sandbox.control.pay_invoice(inv.id)
    all_events = list(client.v1.events.list({"limit": 3}).auto_paging_iter())
    assert len({e.id for e in all_events}) == len(all_events) >= 10
    assert all(e.object == "event" and e.api_version for e in all_events)
    paid = client.v1.events.list({"type": "invoice.paid"}).data
    assert len(paid) == 1 and paid[0].data.object.status == "paid"
    assert set(fixture_keys("event")) <= set(paid[0].to_dict())
    since = all_events[0].created
    recent = client.v1.events.list({"created": {"gte": since}, "types": ["invoice.paid"]}).data
    assert [e.id for e in recent] == [paid[0].id]
    assert client.v1.events.list({"created": {"gt": since + 3600}}).data == []
    assert client.v1.events.retrieve(paid[0].id).type == "invoice.paid"
    updated = client.v1.events.list({"type": "invoice.updated"}).data[0]
    assert "amount_paid" in updated.data.previous_attributes


def test_invoice_lists_void_uncollectible_and_send_is_recorded(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    a = make_open_invoice(client, email="a@example.com")
    b = make_open_invoice(client, email="b@example.com")
    c = make_open_invoice(client, email="c@example.com")
    assert client.v1.invoices.void_invoice(a.id).status == "void"
    assert client.v1.invoices.mark_uncollectible(b.id).status == "uncollectible"
    assert [i.id for i in client.v1.invoices.list({"status": "open"}).data] == [c.id]
    page = client.v1.invoices.list({"limit": 2})
    assert page.has_more is True and len(page.data) == 2
    rest = client.v1.invoices.list({"limit": 2, "starting_after": page.data[-1].id})
    assert rest.has_more is False and [i.id for i in rest.data] == [a.id]
    assert client.v1.invoices.list({"customer": c.customer}).data[0].id == c.id
    types = {e.type for e in client.v1.events.list({"limit": 100}).data}
    assert {"invoice.voided", "invoice.marked_uncollectible"} <= types
    assert sandbox.control.send_calls() == []
    client.v1.invoices.send_invoice(c.id)
    assert [s["invoice"] for s in sandbox.control.send_calls()] == [c.id]


def test_hosted_invoice_page_shows_invoice_and_sandbox_banner(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    inv = make_open_invoice(client, unit_amount=12345)
    page = httpx.get(inv.hosted_invoice_url)
    assert page.status_code == 200
    assert "SANDBOX" in page.text and "No real money" in page.text
    assert "$123.45" in page.text and "Furnace repair" in page.text and "Pay" in page.text
    declined = httpx.post(inv.hosted_invoice_url + "/pay", data={"card_number": "4000 0000 0000 0002"})
    assert declined.status_code == 402 and "declined" in declined.text
    assert client.v1.invoices.retrieve(inv.id).status == "open"
    paid = httpx.post(inv.hosted_invoice_url + "/pay", data={"card_number": "4242 4242 4242 4242"},
                      follow_redirects=True)
    assert paid.status_code == 200 and 'id="paid"' in paid.text
    assert client.v1.invoices.retrieve(inv.id).status == "paid"


def test_state_file_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    with run_sandbox(state_file=str(state)) as first:
        client = stripe_client(first)
        inv = make_open_invoice(client, email="keep@example.com")
    assert state.exists()
    with run_sandbox(state_file=str(state)) as second:
        again = stripe_client(second).v1.invoices.retrieve(inv.id)
        assert again.status == "open" and again.customer_email == "keep@example.com"
        assert [c.email for c in stripe_client(second).v1.customers.list().data] == ["keep@example.com"]
