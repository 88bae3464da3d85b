"""Send via Stripe when the input is bad, Stripe refuses, totals disagree or the email cannot go out."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from crm.config.settings import save_setting
from crm.send.workflow import SendOptions, SendRefused, resend_invoice_email, send_invoice, void_invoice
from sandbox.testing import RunningSandbox
from tests.fixtures.workflow import STAFF, MakeInvoice
from tests.send_helpers import assert_exactly_one_of_each, sandbox_objects, stripe_client

Conn = psycopg.Connection[dict[str, Any]]


def invoice_row(db: Conn, invoice_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return row


def assert_nothing_happened(db: Conn, sbx: RunningSandbox, invoice_id: int) -> None:
    assert sbx.control.requests() == []
    inv = invoice_row(db, invoice_id)
    assert inv["status"] == "draft" and inv["send_attempt"] == 0 and inv["mode"] is None
    assert db.execute("SELECT count(*) AS n FROM crm.send_steps").fetchone() == {"n": 0}
    assert db.execute("SELECT count(*) AS n FROM crm.audit_log").fetchone() == {"n": 0}


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"email": None}, "The customer has no email address"),
    ({"lines": []}, "The invoice has no lines"),
    ({"lines": [("Goodwill visit", 1, 0)]}, "The invoice total is zero"),
    ({"due_date": date.today() - timedelta(days=3)}, "is in the past"),
])
def test_bad_input_is_refused_clearly_and_nothing_is_sent(db: Conn, crm_sandbox: RunningSandbox,
                                                          make_invoice: MakeInvoice, kwargs: dict[str, Any],
                                                          expected: str) -> None:
    invoice_id = make_invoice(**kwargs)
    with pytest.raises(SendRefused, match=expected):
        send_invoice(invoice_id, STAFF)
    assert_nothing_happened(db, crm_sandbox, invoice_id)


def test_live_mode_without_a_live_key_is_refused(db: Conn, crm_sandbox: RunningSandbox,
                                                 make_invoice: MakeInvoice) -> None:
    save_setting(db, "stripe.mode", "live")
    invoice_id = make_invoice()
    with pytest.raises(SendRefused, match="no live secret key"):
        send_invoice(invoice_id, STAFF)
    assert_nothing_happened(db, crm_sandbox, invoice_id)


def test_a_customer_name_with_html_is_escaped_in_the_email(db: Conn, crm_sandbox: RunningSandbox,
                                                           make_invoice: MakeInvoice) -> None:
    invoice_id = make_invoice(name='<script>alert("x")</script> & Sons',
                              lines=[("<b>Bold</b> repair", 1, 10000)])
    assert send_invoice(invoice_id, STAFF).ok
    email = crm_sandbox.control.resend_emails()[0]
    assert "<script>" not in email["html"] and "&lt;script&gt;" in email["html"]
    assert "<b>Bold</b>" not in email["html"] and "&lt;b&gt;Bold&lt;/b&gt;" in email["html"]
    assert '<script>alert("x")</script> & Sons' in email["text"]


def test_stripe_refusal_puts_the_invoice_back_to_draft_and_the_next_send_starts_clean(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    crm_sandbox.control.add_fault(service="stripe", method="POST", path="/v1/invoices/*/finalize", status=400,
                                  times=1, message="This invoice cannot be finalized: tax settings incomplete.")
    first = send_invoice(draft_invoice, STAFF)

    assert not first.ok and first.failed_step == "finalize" and first.invoice_status == "draft"
    assert "tax settings incomplete" in first.message
    inv = invoice_row(db, draft_invoice)
    assert inv["status"] == "draft" and inv["attention"] == "send_failed"
    assert "tax settings incomplete" in inv["attention_detail"]
    assert inv["stripe_invoice_id"] is None and inv["send_lease_token"] is None
    assert sandbox_objects(crm_sandbox)["invoices"] == []  # the Stripe draft was deleted
    assert crm_sandbox.control.resend_emails() == []

    second = send_invoice(draft_invoice, STAFF)
    assert second.ok, second.message
    assert_exactly_one_of_each(crm_sandbox)
    assert invoice_row(db, draft_invoice)["attention"] is None


def test_a_customer_id_from_other_keys_is_forgotten_and_the_next_send_creates_it(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    # As after moving from the sandbox to real keys: the stored cus_ is unknown to this Stripe.
    customer_id = invoice_row(db, draft_invoice)["customer_id"]
    db.execute("UPDATE crm.customers SET stripe_customer_id_test = 'cus_fromthesandbox' WHERE id = %s",
               (customer_id,))

    first = send_invoice(draft_invoice, STAFF)

    # Stored before the CRM recorded what it gave Stripe: the customer step updates it first.
    assert not first.ok and first.invoice_status == "draft" and first.failed_step == "customer"
    assert "Stripe does not know customer cus_fromthesandbox" in first.message
    assert "press Send again" in first.message
    stored = db.execute("SELECT stripe_customer_id_test FROM crm.customers WHERE id = %s", (customer_id,)).fetchone()
    assert stored == {"stripe_customer_id_test": None}

    second = send_invoice(draft_invoice, STAFF)
    assert second.ok, second.message
    objs = assert_exactly_one_of_each(crm_sandbox)
    assert db.execute("SELECT stripe_customer_id_test AS c FROM crm.customers WHERE id = %s",
                      (customer_id,)).fetchone() == {"c": objs["customers"][0]["id"]}


def test_a_total_that_differs_at_stripe_stops_before_the_email(db: Conn, crm_sandbox: RunningSandbox,
                                                              draft_invoice: int) -> None:
    def sneak_in_a_line(step: str) -> None:
        if step == "lines":
            stripe_id = invoice_row(db, draft_invoice)["stripe_invoice_id"]
            stripe_client(crm_sandbox).v1.invoices.add_lines(
                stripe_id, {"lines": [{"amount": 500, "description": "Surprise fee"}]})

    result = send_invoice(draft_invoice, STAFF, options=SendOptions(after_step=sneak_in_a_line))

    assert not result.ok and result.failed_step == "finalize"
    inv = invoice_row(db, draft_invoice)
    assert inv["status"] == "sending" and inv["attention"] == "total_mismatch"
    assert "differs from ours" in inv["attention_detail"]
    assert crm_sandbox.control.resend_emails() == []
    with pytest.raises(SendRefused, match="differs from ours"):
        send_invoice(draft_invoice, STAFF)


@pytest.mark.parametrize(("status", "same_key"), [(422, False), (500, True)])
def test_email_failure_leaves_the_invoice_open_and_resend_sends_exactly_one(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int, status: int, same_key: bool) -> None:
    crm_sandbox.control.add_fault(service="resend", method="POST", path="/emails", status=status,
                                  times=4 if same_key else 1)
    result = send_invoice(draft_invoice, STAFF)

    assert not result.ok and result.failed_step == "email" and result.invoice_status == "open"
    assert "email was not sent" in result.message
    inv = invoice_row(db, draft_invoice)
    assert inv["status"] == "open" and inv["attention"] == "email_not_sent" and inv["resend_email_id"] is None
    assert crm_sandbox.control.resend_emails() == []
    assert db.execute("SELECT count(*) AS n FROM crm.reminders WHERE invoice_id = %s",
                      (draft_invoice,)).fetchone() == {"n": 3}

    again = resend_invoice_email(draft_invoice, STAFF)

    assert again.ok, again.message
    inv = invoice_row(db, draft_invoice)
    assert inv["attention"] is None and inv["resend_email_id"]
    assert_exactly_one_of_each(crm_sandbox)
    keys = [r["idempotency_key"] for r in crm_sandbox.control.requests(service="resend", method="POST")]
    assert (keys[0] == keys[-1]) is same_key


def test_deliberate_resend_of_a_delivered_email_sends_a_second_one(db: Conn, crm_sandbox: RunningSandbox,
                                                                   draft_invoice: int) -> None:
    assert send_invoice(draft_invoice, STAFF).ok
    first_id = invoice_row(db, draft_invoice)["resend_email_id"]
    assert resend_invoice_email(draft_invoice, STAFF).ok
    assert invoice_row(db, draft_invoice)["resend_email_id"] != first_id
    assert len(crm_sandbox.control.resend_emails()) == 2


def test_void_voids_at_stripe_cancels_reminders_and_is_idempotent(db: Conn, crm_sandbox: RunningSandbox,
                                                                   draft_invoice: int) -> None:
    assert send_invoice(draft_invoice, STAFF).ok
    void_invoice(draft_invoice, STAFF)
    void_invoice(draft_invoice, STAFF)

    inv = invoice_row(db, draft_invoice)
    assert inv["status"] == "void" and inv["voided_at"] is not None
    assert sandbox_objects(crm_sandbox)["invoices"][0]["status"] == "void"
    reminders = db.execute("SELECT status, cancel_reason FROM crm.reminders WHERE invoice_id = %s",
                           (draft_invoice,)).fetchall()
    assert reminders and all(r == {"status": "cancelled", "cancel_reason": "void"} for r in reminders)
    audit = db.execute("SELECT from_status, to_status FROM crm.audit_log WHERE entity_id = %s AND to_status = 'void'",
                       (draft_invoice,)).fetchall()
    assert audit == [{"from_status": "open", "to_status": "void"}]
    with pytest.raises(SendRefused):
        send_invoice(draft_invoice, STAFF)
