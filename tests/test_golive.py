"""Go live, step by step (crm/golive/steps.py) against the sandbox over real HTTP with the real sidecar:
every step checked for real and stored, the endpoint registered once and updated in place, the
test invoice green only when its webhook arrived, and live mode refused until steps 1-5 are green."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from crm.config.settings import load_settings, save_setting
from crm.golive import steps as golive
from crm.stripe.endpoint import endpoint_state, register
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import BUSINESS_NAME
from tests.reconcile_helpers import deliveries_settled, wait_until
from tests.send_helpers import stripe_client

Conn = psycopg.Connection[dict[str, Any]]
OWNER = "olive@acme-hvac.test"
RESEND_WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


@pytest.fixture
def golive_sandbox(db: Conn, crm_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    """The test key points at the sandbox (STRIPE_API_BASE); live has no key, so its sandbox
    (SANDBOX_URL) stands in, as in the local demo."""
    monkeypatch.setenv("SANDBOX_URL", crm_sandbox.base_url)
    crm_sandbox.control.clear_resend_domains()  # go-live adds the From domain itself
    return crm_sandbox


def _green(db: Conn, step: str) -> bool:
    view = next(v for v in golive.checklist(db, load_settings(db)) if v.step.key == step)
    return view.green


def test_golive_stripe_key_shows_the_account_name(db: Conn, golive_sandbox: RunningSandbox) -> None:
    result = golive.check_step("stripe_test_key", load_settings(db))
    assert result.ok and BUSINESS_NAME in result.detail and "acct_" in result.detail
    assert _green(db, "stripe_test_key")
    row = db.execute("SELECT ok, checked_at, fingerprint FROM crm.golive_checks WHERE step = 'stripe_test_key'"
                     ).fetchone()
    assert row is not None and row["ok"] and row["checked_at"] and "sk_test" not in row["fingerprint"]
    save_setting(db, "stripe.test.secret_key", "sk_test_someotherkey12345")  # a new key: the green is stale
    assert not _green(db, "stripe_test_key")
    bad = golive.check_step("stripe_test_key", load_settings(db))
    assert bad.ok  # the sandbox accepts any well-formed key; a refused key:
    save_setting(db, "stripe.test.secret_key", "sk_live_wrongmode12345678")
    assert "does not start with sk_test_" in golive.check_step("stripe_test_key", load_settings(db)).detail


def test_golive_webhook_registration_updates_in_place_and_checks_every_handled_type(
        db: Conn, golive_sandbox: RunningSandbox, sidecar: Any) -> None:
    assert "No test-mode webhook endpoint is registered" in golive.check_step("test_webhook", load_settings(db)).detail
    url = f"{sidecar.url}/webhooks/stripe"
    first = register(load_settings(db), "test", url, None)
    assert first.ok and first.message.startswith("Registered we_")
    assert golive.check_step("test_webhook", load_settings(db)).ok

    # An endpoint registered before a handled type was added: the check names what is missing.
    client = stripe_client(golive_sandbox)
    endpoint_id = str(load_settings(db)["stripe.test.webhook_endpoint_id"])
    client.v1.webhook_endpoints.update(endpoint_id, {"enabled_events": list(HANDLED_EVENT_TYPES[:-1])})  # type: ignore[arg-type]
    stale = golive.check_step("test_webhook", load_settings(db))
    assert not stale.ok and HANDLED_EVENT_TYPES[-1] in stale.detail
    assert endpoint_state(load_settings(db), "test").missing_types == [HANDLED_EVENT_TYPES[-1]]

    again = register(load_settings(db), "test", url, None)
    assert again.ok and again.message.startswith(f"Updated {endpoint_id} in place"), again.message
    endpoints = client.v1.webhook_endpoints.list().data
    assert [ep.id for ep in endpoints] == [endpoint_id]  # not a second endpoint
    assert set(endpoints[0].enabled_events) == set(HANDLED_EVENT_TYPES)
    assert golive.check_step("test_webhook", load_settings(db)).ok


def test_golive_webhook_must_be_public_https_except_in_the_sandbox() -> None:
    from crm.stripe.endpoint import public_https_problem

    assert public_https_problem("http://crm.example.com/webhooks/stripe", False)
    assert public_https_problem("https://127.0.0.1/webhooks/stripe", False)
    assert public_https_problem("https://10.0.0.5/webhooks/stripe", False)
    assert public_https_problem("https://crm.example.com/webhooks/stripe", False) is None
    assert public_https_problem("http://127.0.0.1:8000/webhooks/stripe", True) is None


def test_golive_resend_needs_a_verified_domain_with_tracking_and_a_webhook_secret(
        db: Conn, golive_sandbox: RunningSandbox) -> None:
    first = golive.check_step("resend", load_settings(db))
    assert not first.ok
    assert "acme-hvac.test is not added in Resend" in first.detail and "webhook signing secret" in first.detail
    setup = golive.setup_resend_domain(load_settings(db))
    assert setup.ok and "added acme-hvac.test" in setup.message and setup.records
    save_setting(db, "resend.webhook_secret", RESEND_WEBHOOK_SECRET)
    done = golive.check_step("resend", load_settings(db))
    assert done.ok, done.detail
    again = golive.setup_resend_domain(load_settings(db))
    assert again.message == "acme-hvac.test is already verified with tracking on."


def _steps_1_to_3(db: Conn, sidecar_url: str) -> None:
    register(load_settings(db), "test", f"{sidecar_url}/webhooks/stripe", None)
    golive.setup_resend_domain(load_settings(db))
    save_setting(db, "resend.webhook_secret", RESEND_WEBHOOK_SECRET)
    for step in ("stripe_test_key", "test_webhook", "resend"):
        assert golive.check_step(step, load_settings(db)).ok, step


def test_golive_test_invoice_then_live_switch_refused_before_and_allowed_after(
        db: Conn, golive_sandbox: RunningSandbox, sidecar: Any) -> None:
    refused = golive.switch_mode("live", None)
    assert not refused.ok and "Step 1 (Stripe test key) has not been checked." in refused.message
    assert load_settings(db).stripe_mode == "test"
    _steps_1_to_3(db, sidecar.url)

    sent = golive.send_test_invoice(load_settings(db), OWNER, "Olive Owner", None, "owner")
    assert sent.ok and sent.pay_url, sent.message
    inv = db.execute("SELECT i.id, i.status, i.amount_due_cents, c.email, c.reminders_opt_out FROM crm.invoices i "
                     "JOIN crm.customers c ON c.id = i.customer_id").fetchone()
    assert inv is not None and (inv["status"], inv["amount_due_cents"], inv["email"]) == ("open", 100, OWNER)
    assert inv["reminders_opt_out"]
    waiting = golive.check_step("test_invoice", load_settings(db))
    assert not waiting.ok and "pay with the test card" in waiting.detail
    refused = golive.switch_mode("live", None)
    assert "Step 4 (Test invoice, paid) is not done" in refused.message
    assert "Step 5 (Live key and live endpoint) is not done" in refused.message

    stripe_id = db.execute("SELECT stripe_invoice_id FROM crm.invoices WHERE id = %s", (inv["id"],)).fetchone()
    assert stripe_id is not None
    golive_sandbox.control.pay_invoice(stripe_id["stripe_invoice_id"])
    wait_until(lambda: golive.check_step("test_invoice", load_settings(db)).ok, what="the test invoice's webhook")
    paid = golive.check_step("test_invoice", load_settings(db))
    assert "its webhook arrived" in paid.detail and paid.facts["seconds_to_webhook"] >= 0

    # Step 5 in the sandbox demo: no live key, so the sandbox's live mode stands in, labelled.
    assert register(load_settings(db), "live", f"{sidecar.url}/webhooks/stripe", None).ok
    live = golive.check_step("live", load_settings(db))
    assert live.ok and live.sandboxed and "SANDBOX" in live.detail, live.detail
    allowed = golive.switch_mode("live", None)
    assert allowed.ok and "SANDBOX" in allowed.message, allowed.message
    assert load_settings(db).stripe_mode == "live"
    assert golive.switch_mode("test", None).ok  # going back is never refused

    # A step checked with other settings no longer counts.
    save_setting(db, "resend.webhook_secret", RESEND_WEBHOOK_SECRET + "x")
    again = golive.switch_mode("live", None)
    assert not again.ok and "Step 3 (Email (Resend)) was checked with other settings" in again.message


def test_golive_test_invoice_paid_but_found_only_by_reconcile_is_not_green(
        db: Conn, golive_sandbox: RunningSandbox, sidecar: Any) -> None:
    from crm.stripe.reconcile import run_reconcile

    _steps_1_to_3(db, sidecar.url)
    assert golive.send_test_invoice(load_settings(db), OWNER, "Olive Owner", None, "owner").ok
    golive_sandbox.control.set_delivery_faults(service="stripe", drop_rate=1.0)
    row = db.execute("SELECT stripe_invoice_id FROM crm.invoices").fetchone()
    assert row is not None
    golive_sandbox.control.pay_invoice(row["stripe_invoice_id"])
    wait_until(lambda: deliveries_settled(golive_sandbox))
    run_reconcile("cli")
    result = golive.check_step("test_invoice", load_settings(db))
    assert not result.ok and "never arrived" in result.detail


@pytest.mark.usefixtures("queue_job_active")
def test_golive_doctor_prints_the_checklist(db: Conn, database_url: str, golive_sandbox: RunningSandbox) -> None:
    golive.check_step("stripe_test_key", load_settings(db))
    save_setting(db, "stripe.test.webhook_secrets", "whsec_doctor_test_0123456789")
    env = {"DATABASE_URL": database_url, "STRIPE_API_BASE": golive_sandbox.stripe_api_base,
           "RESEND_API_URL": golive_sandbox.resend_api_url, "SANDBOX_URL": golive_sandbox.base_url,
           "STRIPE_MAX_NETWORK_RETRIES": "0"}
    result = subprocess.run([sys.executable, "-m", "crm", "doctor"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **env})
    out = result.stdout
    assert "Go live, step by step" in out, out + result.stderr
    assert f"1. Stripe test key: The test key works: account {BUSINESS_NAME}" in out
    assert "2. Test webhook endpoint" in out and "6. Switch to live: refused" in out
    assert result.returncode == 0, out  # in test mode unfinished steps are notes, not failures
