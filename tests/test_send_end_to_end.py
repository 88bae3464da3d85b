"""Send via Stripe through real HTTP end to end: sandbox Stripe and Resend, the sidecar, Postgres.

A draft invoice is sent; the sandbox's Resend holds one email from the business with the
pay link; paying in the sandbox delivers a signed invoice.paid to the sidecar, and the
invoice is paid, the job completed and the reminders cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import psycopg
import pytest

from crm.send.workflow import SendOptions, SendRefused, SimulatedCrash, send_invoice
from ops.demo_setup import connect_sandbox
from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import BUSINESS_FROM
from tests.fixtures.workflow import STAFF, MakeInvoice
from tests.reconcile_helpers import wire_sidecar
from tests.send_helpers import assert_exactly_one_of_each

Conn = psycopg.Connection[dict[str, Any]]


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_send_pay_and_the_webhook_marks_it_paid(db: Conn, crm_sandbox: RunningSandbox, sidecar: Any,
                                                make_invoice: MakeInvoice) -> None:
    wire_sidecar(db, sidecar.url)
    invoice_id = make_invoice()

    result = send_invoice(invoice_id, STAFF)

    assert result.ok, result.message
    emails = crm_sandbox.control.resend_emails()
    assert len(emails) == 1 and BUSINESS_FROM in emails[0]["from"]
    assert result.pay_url and result.pay_url in emails[0]["html"]
    stripe_id = db.execute("SELECT stripe_invoice_id FROM crm.invoices WHERE id = %s",
                           (invoice_id,)).fetchone()["stripe_invoice_id"]  # type: ignore[index]

    paid = crm_sandbox.control.pay_invoice(stripe_id)

    assert paid["error"] is None and paid["invoice"]["status"] == "paid"
    wait_until(lambda: db.execute("SELECT status FROM crm.invoices WHERE id = %s",
                                  (invoice_id,)).fetchone() == {"status": "paid"})
    # The invoice may turn paid by an earlier event (invoice_payment.paid, invoice.updated) before
    # the invoice.paid delivery is logged: wait for the log rather than assume the order.
    wait_until(lambda: bool(crm_sandbox.control.deliveries(service="stripe", event_type="invoice.paid")))
    deliveries = crm_sandbox.control.deliveries(service="stripe", event_type="invoice.paid")
    assert deliveries and all(str(d.get("outcome")) for d in deliveries)
    inv = db.execute("SELECT i.status, i.paid_at, i.amount_paid_cents, i.amount_due_cents, j.status AS job_status "
                     "FROM crm.invoices i JOIN crm.jobs j ON j.id = i.job_id WHERE i.id = %s",
                     (invoice_id,)).fetchone()
    assert inv is not None
    assert inv["paid_at"] is not None and inv["amount_paid_cents"] == inv["amount_due_cents"]
    assert inv["job_status"] == "completed"
    reminders = db.execute("SELECT status, cancel_reason FROM crm.reminders WHERE invoice_id = %s",
                           (invoice_id,)).fetchall()
    assert len(reminders) == 3
    assert all(r == {"status": "cancelled", "cancel_reason": "paid"} for r in reminders), reminders


def test_a_send_killed_after_finalize_resumes_though_the_webhook_already_opened_it(
        db: Conn, crm_sandbox: RunningSandbox, sidecar: Any, make_invoice: MakeInvoice) -> None:
    wire_sidecar(db, sidecar.url)
    invoice_id = make_invoice()

    def die_after_finalize(step: str) -> None:
        if step == "finalize":
            raise SimulatedCrash(step)

    with pytest.raises(SimulatedCrash):
        send_invoice(invoice_id, STAFF, options=SendOptions(lease_s=300, after_step=die_after_finalize))
    wait_until(lambda: db.execute("SELECT status FROM crm.invoices WHERE id = %s",
                                  (invoice_id,)).fetchone() == {"status": "open"})
    with pytest.raises(SendRefused, match="already being sent by"):
        send_invoice(invoice_id, STAFF)

    result = send_invoice(invoice_id, STAFF, options=SendOptions(now=datetime.now(timezone.utc) + timedelta(days=1)))

    assert result.ok, result.message
    assert_exactly_one_of_each(crm_sandbox)
    row = db.execute("SELECT status, sent_at FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None and row["status"] == "open" and row["sent_at"] is not None
    assert db.execute("SELECT count(*) AS n FROM crm.reminders WHERE invoice_id = %s",
                      (invoice_id,)).fetchone() == {"n": 3}


def test_demo_wiring_registers_the_sidecar_at_the_sandbox_once(db: Conn, fresh_sandbox: RunningSandbox,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from crm.config.settings import load_settings
    from tests.send_helpers import stripe_client

    monkeypatch.setenv("SANDBOX_URL", fresh_sandbox.base_url)
    first = connect_sandbox("8765", timeout_s=5)
    second = connect_sandbox("8765", timeout_s=5)

    # Stripe endpoint, Resend webhook, the From domain at the sandbox's Resend, Twilio's callbacks.
    assert len(first) == 4 and "registered Stripe webhook endpoint" in first[0]
    assert "already registered" in second[0]
    endpoints = stripe_client(fresh_sandbox).v1.webhook_endpoints.list().data
    assert [e.url for e in endpoints] == ["http://127.0.0.1:8765/webhooks/stripe"]
    settings = load_settings(db)
    assert settings.stripe_webhook_secrets("test")[0].startswith("whsec_")
    assert str(settings["resend.webhook_secret"]).startswith("whsec_")
    hooks = httpx.get(f"{fresh_sandbox.resend_api_url}/webhooks", headers={"Authorization": "Bearer re_any_key"},
                      trust_env=False).json()["data"]
    assert [h["endpoint"] for h in hooks] == ["http://127.0.0.1:8765/webhooks/resend"]
    assert settings["twilio.status_callback_url"] == "http://127.0.0.1:8765/webhooks/twilio"
    assert any("Twilio status callbacks" in line and "(kept)" in line for line in second), second
