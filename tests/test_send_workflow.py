"""Send via Stripe end to end against the sandbox: what gets created, stored, emailed and counted."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from crm.send.workflow import SendRefused, send_invoice
from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import BUSINESS_FROM, BUSINESS_NAME
from tests.fixtures.workflow import DEFAULT_TOTAL, STAFF, MakeInvoice

Conn = psycopg.Connection[dict[str, Any]]


def writes(sbx: RunningSandbox, service: str) -> list[dict[str, Any]]:
    return [r for r in sbx.control.requests(service=service) if r["method"] == "POST"]


def test_send_creates_customer_invoice_and_email_and_opens_the_invoice(db: Conn, crm_sandbox: RunningSandbox,
                                                                      draft_invoice: int) -> None:
    steps: list[str] = []
    result = send_invoice(draft_invoice, STAFF, progress=steps.append)

    assert result.ok, result.message
    assert result.invoice_status == "open"
    assert result.pay_url and result.pay_url.startswith(crm_sandbox.base_url)
    inv = db.execute("SELECT * FROM crm.invoices WHERE id = %s", (draft_invoice,)).fetchone()
    assert inv is not None
    assert inv["status"] == "open" and inv["sent_at"] is not None and inv["mode"] == "test"
    assert inv["amount_due_cents"] == DEFAULT_TOTAL == inv["stripe_total_cents"]
    assert inv["stripe_invoice_id"].startswith("in_") and inv["stripe_invoice_number"]
    assert inv["invoice_pdf_url"] and inv["resend_email_id"]
    assert inv["send_lease_token"] is None and inv["attention"] is None
    cus = db.execute("SELECT stripe_customer_id_test FROM crm.customers WHERE id = %s",
                     (inv["customer_id"],)).fetchone()
    assert cus is not None and cus["stripe_customer_id_test"].startswith("cus_")
    assert len(steps) == 5

    stripe_inv = crm_sandbox.control.events()  # the sandbox's own record of what happened
    finalized = [e for e in stripe_inv if e["type"] == "invoice.finalized"]
    assert len(finalized) == 1
    obj = finalized[0]["data"]["object"]
    assert obj["collection_method"] == "send_invoice" and obj["auto_advance"] is False
    assert obj["metadata"]["crm_invoice_id"] == str(draft_invoice)
    assert obj["metadata"]["crm_job_id"] == str(inv["job_id"])
    assert obj["total"] == DEFAULT_TOTAL and len(obj["lines"]["data"]) == 2
    assert crm_sandbox.control.send_calls() == []  # Stripe never emails the customer

    emails = crm_sandbox.control.resend_emails()
    assert len(emails) == 1
    email = emails[0]
    assert email["id"] == inv["resend_email_id"]
    assert email["to"] == ["dana@example.com"]
    assert BUSINESS_FROM in email["from"] and BUSINESS_NAME in email["from"]
    assert email["subject"].startswith(f"Invoice {inv['stripe_invoice_number']} from {BUSINESS_NAME} — $460.00 due")
    assert inv["hosted_invoice_url"] in email["html"] and inv["hosted_invoice_url"] in email["text"]
    assert inv["invoice_pdf_url"] in email["html"]
    assert {"name": "crm_invoice_id", "value": str(draft_invoice)} in email["tags"]

    reminders = db.execute("SELECT offset_days, status FROM crm.reminders WHERE invoice_id = %s ORDER BY offset_days",
                           (draft_invoice,)).fetchall()
    assert [(r["offset_days"], r["status"]) for r in reminders] == [(7, "pending"), (14, "pending"), (30, "pending")]
    msg = db.execute("SELECT kind, resend_id, status FROM crm.email_messages WHERE invoice_id = %s",
                     (draft_invoice,)).fetchall()
    assert msg == [{"kind": "invoice", "resend_id": inv["resend_email_id"], "status": "sent"}]
    audit = db.execute("SELECT from_status, to_status, actor_type, actor FROM crm.audit_log "
                       "WHERE entity = 'invoice' AND entity_id = %s ORDER BY id", (draft_invoice,)).fetchall()
    assert [(a["from_status"], a["to_status"]) for a in audit] == [("draft", "sending"), ("sending", "open")]
    assert {a["actor"] for a in audit} == {STAFF}
    steps_rows = db.execute("SELECT step, status FROM crm.send_steps WHERE invoice_id = %s ORDER BY id",
                            (draft_invoice,)).fetchall()
    assert [(s["step"], s["status"]) for s in steps_rows] == [
        ("customer", "succeeded"), ("invoice", "succeeded"), ("lines", "succeeded"), ("finalize", "succeeded"),
        ("email", "succeeded"), ("complete", "succeeded")]


def test_new_customer_takes_four_stripe_writes_one_read_and_one_email(crm_sandbox: RunningSandbox,
                                                                     draft_invoice: int) -> None:
    assert send_invoice(draft_invoice, STAFF).ok
    stripe_calls = crm_sandbox.control.requests(service="stripe")
    assert [(r["method"], r["path"].split("/")[-1] if "/in_" in r["path"] else r["path"]) for r in stripe_calls] == [
        ("POST", "/v1/customers"), ("POST", "/v1/invoices"), ("POST", "add_lines"), ("POST", "finalize"),
        ("GET", "/v1/invoice_payments")]  # the default payment Stripe made at finalize
    assert all(r["idempotency_key"] for r in stripe_calls if r["method"] == "POST")
    assert len(crm_sandbox.control.requests(service="resend")) == 1


def test_returning_customer_takes_three_stripe_writes_and_one_email(db: Conn, crm_sandbox: RunningSandbox,
                                                                  make_invoice: MakeInvoice) -> None:
    first = make_invoice()
    assert send_invoice(first, STAFF).ok
    customer_id = db.execute("SELECT customer_id FROM crm.invoices WHERE id = %s", (first,)).fetchone()["customer_id"]  # type: ignore[index]
    second = make_invoice(customer_id=customer_id)
    since = max(r["time"] for r in crm_sandbox.control.requests())
    assert send_invoice(second, STAFF).ok
    stripe_calls = [r for r in crm_sandbox.control.requests(service="stripe") if r["time"] > since
                    and r["method"] == "POST"]
    resend_calls = [r for r in crm_sandbox.control.requests(service="resend") if r["time"] > since]
    assert len(stripe_calls) == 3, stripe_calls
    assert not any(r["path"] == "/v1/customers" for r in stripe_calls)
    assert len(resend_calls) == 1


def test_a_sent_invoice_cannot_be_sent_again(crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    assert send_invoice(draft_invoice, STAFF).ok
    with pytest.raises(SendRefused, match="this one is open"):
        send_invoice(draft_invoice, STAFF)
    assert len(crm_sandbox.control.resend_emails()) == 1
