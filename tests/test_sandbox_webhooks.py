# The libraries type most response fields as Optional/unions; these tests assert the values instead.
# mypy: disable-error-code="union-attr,arg-type,operator,index,typeddict-item,return-value"
"""Stripe webhook delivery from the sandbox: signatures, retries, and delivery faults."""

from __future__ import annotations

import json

import httpx
import pytest
import stripe

from sandbox.testing import RunningSandbox
from tests import sandbox_helpers as helpers
from tests.sandbox_helpers import Receiver, make_open_invoice, stripe_client

# Fixtures shared through the helpers module.
receiver = helpers.receiver
sandbox = helpers.sandbox
sbx = helpers.sbx


def _endpoint(client: stripe.StripeClient, url: str, events: list[str]) -> str:
    ep = client.v1.webhook_endpoints.create({"url": url, "enabled_events": events,
                                             "api_version": "2026-10-28.endive"})
    assert ep.secret.startswith("whsec_")
    assert "secret" not in client.v1.webhook_endpoints.retrieve(ep.id).to_dict()
    return ep.secret


def test_hosted_page_payment_posts_signed_invoice_paid(sandbox: RunningSandbox, receiver: Receiver) -> None:
    client = stripe_client(sandbox)
    secret = _endpoint(client, receiver.url, ["invoice.paid", "invoice_payment.paid"])
    inv = make_open_invoice(client)
    resp = httpx.post(inv.hosted_invoice_url + "/pay", data={"card_number": "4242424242424242"})
    assert resp.status_code == 303
    receiver.wait(lambda got: len(got) >= 2)
    hit = next(r for r in receiver.received if json.loads(r["body"])["type"] == "invoice.paid")
    event = stripe.Webhook.construct_event(hit["body"].decode(), hit["headers"]["Stripe-Signature"], secret)
    assert event.type == "invoice.paid" and event.livemode is False
    assert event.data.object.id == inv.id and event.data.object.status == "paid"
    assert event.data.object.amount_paid == inv.amount_due
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(hit["body"].decode(), hit["headers"]["Stripe-Signature"],
                                       "whsec_wrong")
    # Only subscribed types arrive; the event's pending_webhooks drops once delivered.
    assert {e["type"] for e in receiver.events()} == {"invoice.paid", "invoice_payment.paid"}
    sandbox.control.wait_for(lambda: [e for e in sandbox.control.events() if e["id"] == event.id],
                             lambda rows: rows[0]["pending_webhooks"] == 0)


def test_receiver_500_is_retried_until_2xx(sandbox: RunningSandbox) -> None:
    rec = Receiver(statuses=[500, 500])
    try:
        client = stripe_client(sandbox)
        _endpoint(client, rec.url, ["customer.created"])
        cus = client.v1.customers.create({"email": "r@example.com"})
        rec.wait(lambda got: [r["status"] for r in got] == [500, 500, 200])
        log = sandbox.control.wait_for(
            lambda: sandbox.control.deliveries(event_type="customer.created"),
            lambda rows: any(r["outcome"] == "delivered" for r in rows))
        assert [(r["attempt"], r["status"], r["outcome"]) for r in log] == [
            (1, 500, "retry_scheduled"), (2, 500, "retry_scheduled"), (3, 200, "delivered")]
        assert log[1]["next_retry_in_s"] > log[0]["next_retry_in_s"]  # exponential backoff
        bodies = {json.loads(r["body"])["data"]["object"]["id"] for r in rec.received}
        assert bodies == {cus.id}
    finally:
        rec.close()


def test_unreachable_endpoint_gives_up_after_bounded_attempts(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    _endpoint(client, "http://127.0.0.1:9/nothing-listens-here", ["customer.created"])
    client.v1.customers.create({"email": "x@example.com"})
    log = sandbox.control.wait_for(lambda: sandbox.control.deliveries(),
                                   lambda rows: any(r["outcome"] == "gave_up" for r in rows))
    assert len(log) == sandbox.settings.webhook_max_attempts
    assert all(r["status"] is None and r["error"] for r in log)


def test_public_webhook_urls_are_refused(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    _endpoint(client, "http://8.8.8.8/hook", ["customer.created"])
    client.v1.customers.create({"email": "p@example.com"})
    log = sandbox.control.wait_for(lambda: sandbox.control.deliveries(), lambda rows: bool(rows))
    assert log[0]["outcome"] == "refused"


def test_drop_switch_loses_delivery_but_event_stays_listed(sandbox: RunningSandbox, receiver: Receiver) -> None:
    client = stripe_client(sandbox)
    _endpoint(client, receiver.url, ["*"])
    sandbox.control.set_delivery_faults(service="stripe", drop_rate=1.0)
    cus = client.v1.customers.create({"email": "d@example.com"})
    listed = client.v1.events.list({"type": "customer.created"}).data
    assert [e.data.object.id for e in listed] == [cus.id]
    assert sandbox.control.deliveries(outcome="dropped")
    sandbox.control.set_delivery_faults(service="stripe")  # back to normal
    client.v1.customers.create({"email": "ok@example.com"})
    receiver.wait(lambda got: len(got) >= 1)
    assert [e["data"]["object"]["email"] for e in receiver.events()] == ["ok@example.com"]


def test_duplicate_switch_delivers_same_event_twice(sandbox: RunningSandbox, receiver: Receiver) -> None:
    client = stripe_client(sandbox)
    _endpoint(client, receiver.url, ["customer.created"])
    sandbox.control.set_delivery_faults(service="stripe", duplicate_rate=1.0)
    client.v1.customers.create({"email": "dup@example.com"})
    receiver.wait(lambda got: len(got) == 2)
    ids = [e["id"] for e in receiver.events()]
    assert ids[0] == ids[1]


def test_delay_switch_reorders_deliveries(sandbox: RunningSandbox, receiver: Receiver) -> None:
    client = stripe_client(sandbox)
    _endpoint(client, receiver.url, ["customer.created"])
    sandbox.control.set_delivery_faults(service="stripe", delay_rate=1.0, delay_s=0.5)
    client.v1.customers.create({"email": "first@example.com"})
    sandbox.control.set_delivery_faults(service="stripe")
    client.v1.customers.create({"email": "second@example.com"})
    receiver.wait(lambda got: len(got) == 2)
    assert [e["data"]["object"]["email"] for e in receiver.events()] == [
        "second@example.com", "first@example.com"]


def test_live_endpoint_gets_no_test_events(sandbox: RunningSandbox, receiver: Receiver) -> None:
    live = stripe_client(sandbox, "sk_live_sandbox123")
    _endpoint(live, receiver.url, ["*"])
    stripe_client(sandbox).v1.customers.create({"email": "t@example.com"})
    live.v1.customers.create({"email": "l@example.com"})
    receiver.wait(lambda got: len(got) >= 1)
    assert [(e["livemode"], e["data"]["object"]["email"]) for e in receiver.events()] == [
        (True, "l@example.com")]
