"""The sandbox pieces the go-live checklist and webhook health use: the account behind a key
(GET /v1/account), Resend's domains API with tracking, and disabling a webhook endpoint the
way Stripe does after days of failures. Real stripe-python and resend-python clients."""

from __future__ import annotations

from typing import Any

import pytest
import resend

from sandbox.testing import RunningSandbox
from tests import sandbox_helpers as helpers
from tests.sandbox_helpers import LIVE_KEY, Receiver, fixture_keys, make_open_invoice, stripe_client

sandbox = helpers.sandbox
sbx = helpers.sbx
receiver = helpers.receiver
use_resend = helpers.use_resend


def test_golive_sandbox_account_has_stripes_account_shape(sandbox: RunningSandbox) -> None:
    account = stripe_client(sandbox).v1.accounts.retrieve_current()
    assert account.object == "account" and account.id.startswith("acct_")
    shown = account.to_dict()
    assert shown["settings"]["dashboard"]["display_name"] == sandbox.settings.business_name
    assert shown["business_profile"]["name"] == sandbox.settings.business_name
    assert fixture_keys("account") <= set(account.to_dict()) | {"individual", "company"}
    live = stripe_client(sandbox, LIVE_KEY).v1.accounts.retrieve_current()
    assert live.id == account.id  # one account, two modes
    assert stripe_client(sandbox).v1.accounts.retrieve(account.id).id == account.id


def test_golive_sandbox_resend_domains_with_tracking(use_resend: RunningSandbox) -> None:
    created: Any = resend.Domains.create({"name": "acme-hvac.test"})
    assert created["status"] == "not_started" and created["records"]
    listed: Any = resend.Domains.list()
    row = next(d for d in listed["data"] if d["name"] == "acme-hvac.test")
    assert (row["open_tracking"], row["click_tracking"]) == (False, False)  # off by default, as at Resend
    resend.Domains.update({"id": created["id"], "open_tracking": True, "click_tracking": True})
    resend.Domains.verify(created["id"])
    got: Any = resend.Domains.get(created["id"])
    assert (got["status"], got["open_tracking"], got["click_tracking"]) == ("verified", True, True)
    with pytest.raises(resend.exceptions.ResendError):
        resend.Domains.create({"name": "acme-hvac.test"})


def test_webhook_health_sandbox_disables_an_endpoint_and_update_reenables_it(sandbox: RunningSandbox,
                                                                             receiver: Receiver) -> None:
    client = stripe_client(sandbox)
    ep = client.v1.webhook_endpoints.create({"url": receiver.url, "enabled_events": ["invoice.paid"]})
    sandbox.control.disable_webhook_endpoint(ep.id)
    assert client.v1.webhook_endpoints.retrieve(ep.id).status == "disabled"
    inv = make_open_invoice(client)
    sandbox.control.pay_invoice(inv.id)
    assert not [d for d in sandbox.control.deliveries(service="stripe") if d["event_type"] == "invoice.paid"]
    assert client.v1.webhook_endpoints.update(ep.id, {"disabled": False}).status == "enabled"
