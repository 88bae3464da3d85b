"""Request fault injection: stripe-python and resend-python see the errors they would in production."""

from __future__ import annotations

import time

import httpx
import pytest
import resend
import resend.exceptions
import stripe

from sandbox.testing import RunningSandbox
from tests import sandbox_helpers as helpers
from tests.sandbox_helpers import stripe_client

# Fixtures shared through the helpers module.
sandbox = helpers.sandbox
sbx = helpers.sbx
use_resend = helpers.use_resend


def test_500_raises_api_error_then_library_retries_succeed(sandbox: RunningSandbox) -> None:
    sandbox.control.add_fault(service="stripe", path="/v1/customers", method="POST", status=500, times=1)
    with pytest.raises(stripe.APIError):
        stripe_client(sandbox).v1.customers.create({"email": "a@example.com"})
    sandbox.control.add_fault(service="stripe", path="/v1/customers", method="POST", status=500, times=2)
    cus = stripe_client(sandbox, max_network_retries=2).v1.customers.create({"email": "b@example.com"})
    calls = sandbox.control.requests(service="stripe", path="/v1/customers", method="POST")
    assert [c["status"] for c in calls] == [500, 500, 500, 200]
    # The library reused one idempotency key across its own retries.
    assert len({c["idempotency_key"] for c in calls[1:]}) == 1
    assert cus.email == "b@example.com"


def test_429_and_402_map_to_rate_limit_and_card_errors(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    sandbox.control.add_fault(service="stripe", path="/v1/invoices*", status=429, times=1)
    with pytest.raises(stripe.RateLimitError):
        client.v1.invoices.list()
    sandbox.control.add_fault(service="stripe", status=402, times=1)
    with pytest.raises(stripe.CardError):
        client.v1.invoices.list()
    assert client.v1.invoices.list().data == []


def test_response_lost_after_commit_is_safe_with_same_idempotency_key(sandbox: RunningSandbox) -> None:
    client = stripe_client(sandbox)
    sandbox.control.add_fault(service="stripe", path="/v1/customers", method="POST", status=500,
                              times=1, phase="after")
    with pytest.raises(stripe.APIError):
        client.v1.customers.create({"email": "once@example.com"}, {"idempotency_key": "crm-cus-7"})
    cus = client.v1.customers.create({"email": "once@example.com"}, {"idempotency_key": "crm-cus-7"})
    assert [c.id for c in client.v1.customers.list({"email": "once@example.com"}).data] == [cus.id]


def test_hang_times_out_the_client_and_latency_slows_calls(sandbox: RunningSandbox) -> None:
    sandbox.control.add_fault(service="stripe", path="/v1/customers", timeout_s=1.5, times=1)
    slow = stripe.StripeClient("sk_test_x1234", base_addresses={"api": sandbox.stripe_api_base},
                               http_client=stripe.HTTPXClient(timeout=0.3, allow_sync_methods=True))
    with pytest.raises(stripe.APIConnectionError):
        slow.v1.customers.list()
    sandbox.control.clear_faults()
    sandbox.control.add_fault(service="stripe", latency_ms=200)
    started = time.monotonic()
    stripe_client(sandbox).v1.customers.list()
    assert time.monotonic() - started >= 0.2


def test_resend_faults_raise_resend_exceptions(use_resend: RunningSandbox) -> None:
    params: resend.Emails.SendParams = {"from": "Biz <billing@biz.example>", "to": ["c@example.com"],
                                        "subject": "Invoice", "html": "<p>hi</p>"}
    use_resend.control.add_fault(service="resend", path="/emails", status=429, times=1)
    with pytest.raises(resend.exceptions.RateLimitError):
        resend.Emails.send(params)
    use_resend.control.add_fault(service="resend", status=500, times=1)
    with pytest.raises(resend.exceptions.ApplicationError):
        resend.Emails.send(params)
    assert resend.Emails.send(params)["id"]
    statuses = [r["status"] for r in use_resend.control.requests(service="resend", path="/emails")]
    assert statuses == [429, 500, 200]


def test_bad_fault_spec_is_rejected(sandbox: RunningSandbox) -> None:
    resp = httpx.post(sandbox.base_url + "/_sandbox/faults", json={"status": 200})
    assert resp.status_code == 400
