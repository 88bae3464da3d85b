"""The sandbox is never kinder than Stripe, and the CRM checks what Stripe would refuse before
Stripe does: emails (`email_invalid`), exclusive line parameters, and payment methods the
account has no active capability for, which go-live now reports instead of the first live
send. Real stripe-python against the sandbox over HTTP; the go-live checks against real
Postgres."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import stripe

from crm.config.settings import load_settings
from crm.golive import steps as golive
from crm.validation import email_error
from sandbox.testing import RunningSandbox
from tests import sandbox_helpers as helpers
from tests.sandbox_helpers import stripe_client

Conn = psycopg.Connection[dict[str, Any]]
sandbox = helpers.sandbox
sbx = helpers.sbx

# Addresses Stripe answers email_invalid to (the first is the one a customer typed).
REJECTED_EMAILS = ["x@.maie.com", "x.@maie.com", ".x@maie.com", "x..y@maie.com", "x@maie..com", "x@-maie.com",
                   "x@maie-.com", "x@maie", "x@maie.c", "x@maie.c0m", "x y@maie.com", "x@@maie.com", "x@maie.com.",
                   "x@ma_ie.com", "(x)@maie.com"]
ACCEPTED_EMAILS = ["pat@maie.com", "o'brien+invoices@sub.example.co.uk", "a@b.co", "x@xn--bcher-kva.example"]


def test_strict_emails_stripe_rejects_are_refused_by_the_sandbox_and_the_crm(sandbox: RunningSandbox) -> None:
    """Checked by hand: with the sandbox's old check (an "@" anywhere) every address here was
    accepted by customers.create, and with the CRM's old pattern x.@maie.com and .x@maie.com
    passed its check; this test failed on both."""
    client = stripe_client(sandbox)
    kept = client.v1.customers.create({"email": "pat@maie.com", "name": "Pat"})
    sandbox_accepted, crm_accepted = [], []
    for email in REJECTED_EMAILS:
        for call in (lambda e: client.v1.customers.create({"email": e, "name": "Pat"}),
                     lambda e: client.v1.customers.update(kept.id, {"email": e})):
            try:
                call(email)
                sandbox_accepted.append(email)
            except stripe.InvalidRequestError as err:
                assert (err.code, err.param) == ("email_invalid", "email"), email
        if email_error(email) is None:
            crm_accepted.append(email)
    assert sandbox_accepted == [] and crm_accepted == []
    for email in ACCEPTED_EMAILS:
        assert client.v1.customers.create({"email": email}).email == email
        assert email_error(email) is None, email
    assert client.v1.customers.retrieve(kept.id).email == "pat@maie.com"


def test_strict_line_with_unit_amount_and_unit_amount_decimal_is_refused(sandbox: RunningSandbox) -> None:
    """Stripe takes one of unit_amount and unit_amount_decimal. Checked by hand: the sandbox
    used to accept both (and ignore the decimal), and this test failed."""
    client = stripe_client(sandbox)
    cus = client.v1.customers.create({"email": "pat@maie.com"})
    inv = client.v1.invoices.create({"customer": cus.id, "collection_method": "send_invoice", "days_until_due": 7,
                                     "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.add_lines(inv.id, {"lines": [{"description": "Furnace repair", "price_data": {
            "currency": "usd", "unit_amount": 12_500, "unit_amount_decimal": "12500.5",
            "product_data": {"name": "Furnace repair"}}}]})
    assert (err.value.code, err.value.param) == ("parameters_exclusive", "lines[0][price_data][unit_amount_decimal]")
    assert client.v1.invoices.retrieve(inv.id).total == 0, "nothing was added"


def test_capability_inactive_payment_method_is_refused_by_the_sandbox(sandbox: RunningSandbox) -> None:
    """Stripe refuses an invoice offering a payment method the account cannot take. Checked by
    hand: without the sandbox's capability check the bank-debit invoice was created and
    finalized, and this test failed."""
    client = stripe_client(sandbox)
    cus = client.v1.customers.create({"email": "pat@maie.com"})
    offering_bank = {"customer": cus.id, "collection_method": "send_invoice", "days_until_due": 7, "currency": "usd",
                     "payment_settings": {"payment_method_types": ["card", "us_bank_account"]}}
    draft = client.v1.invoices.create(offering_bank)  # made while the capability was active
    opened = client.v1.invoices.create(offering_bank)
    client.v1.invoices.add_lines(opened.id, {"lines": [{"description": "Repair", "amount": 5_000}]})
    client.v1.invoices.finalize_invoice(opened.id)
    sandbox.control.set_capabilities(us_bank_account_ach_payments="inactive")
    caps = client.v1.accounts.retrieve_current().capabilities
    assert (caps.card_payments, caps.us_bank_account_ach_payments) == ("active", "inactive")

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.create(offering_bank)
    assert (err.value.code, err.value.param) == ("payment_method_unactivated", "payment_settings[payment_method_types]")
    assert "us_bank_account_ach_payments" in str(err.value.user_message)
    client.v1.invoices.add_lines(draft.id, {"lines": [{"description": "Repair", "amount": 5_000}]})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.finalize_invoice(draft.id)
    assert err.value.code == "payment_method_unactivated"
    assert client.v1.invoices.retrieve(draft.id).status == "draft"

    card_only = client.v1.invoices.create({**offering_bank, "payment_settings": {"payment_method_types": ["card"]}})
    assert card_only.status == "draft"
    assert sandbox.control.pay_by_bank(opened.id)["error"]["code"] == "payment_method_unactivated"
    assert client.v1.invoices.retrieve(opened.id).amount_paid == 0


@pytest.fixture
def golive_sandbox(db: Conn, crm_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    """The test key points at the sandbox; live has no key, so its sandbox stands in."""
    monkeypatch.setenv("SANDBOX_URL", crm_sandbox.base_url)
    return crm_sandbox


def test_capability_bank_debit_without_it_is_refused_at_golive_not_at_first_live_send(
        db: Conn, golive_sandbox: RunningSandbox) -> None:
    """Checked by hand: before, the key step looked at charges_enabled only and stayed green
    with the capability inactive; this test failed."""
    golive_sandbox.control.set_capabilities(us_bank_account_ach_payments="inactive")
    for step in ("stripe_test_key", "live"):
        result = golive.check_step(step, load_settings(db))
        assert not result.ok, step
        assert "bank debits (ACH Direct Debit) need us_bank_account_ach_payments (inactive)" in result.detail
        assert result.facts["inactive_capabilities"] == ["us_bank_account_ach_payments"]
    refused = golive.switch_mode("live", None)
    assert not refused.ok and "us_bank_account_ach_payments" in refused.message, refused.message
    assert load_settings(db).stripe_mode == "test"

    golive_sandbox.control.set_capabilities(us_bank_account_ach_payments="active")
    assert golive.check_step("stripe_test_key", load_settings(db)).ok
