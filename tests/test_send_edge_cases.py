"""Issue 13's workflow edge cases: void completes the job, the Send lease and Stripe's 409,
totals compared on the draft, the Stripe customer kept in step with the CRM."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from crm.config.settings import load_settings
from crm.send.result import SendResult
from crm.send.workflow import SendOptions, SendRefused, send_invoice, void_invoice
from crm.stripe.gateway import StripeGateway, stripe_target
from sandbox.testing import RunningSandbox
from tests.fixtures.workflow import DEFAULT_TOTAL, STAFF, MakeInvoice
from tests.send_helpers import assert_exactly_one_of_each, sandbox_objects, stripe_client

Conn = psycopg.Connection[dict[str, Any]]
LATER = datetime.now(UTC) + timedelta(days=1)  # a claim clock past any lease taken in the test


def invoice_row(db: Conn, invoice_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return row


# ---------------------------------------------------------------- 1. void completes the job

def test_voiding_the_last_open_invoice_of_a_job_with_a_paid_deposit_completes_the_job(
        db: Conn, crm_sandbox: RunningSandbox, make_invoice: MakeInvoice) -> None:
    final = make_invoice()
    inv = invoice_row(db, final)
    db.execute("INSERT INTO crm.invoices (job_id, customer_id, kind, status, amount_due_cents, amount_paid_cents, "
               "paid_at, mode, stripe_invoice_id) VALUES (%s, %s, 'deposit', 'paid', 5000, 5000, now(), 'test', "
               "'in_deposit')", (inv["job_id"], inv["customer_id"]))
    assert send_invoice(final, STAFF).ok

    void_invoice(final, STAFF)

    job = db.execute("SELECT status, completed_at, completed_by_event_id FROM crm.jobs WHERE id = %s",
                     (inv["job_id"],)).fetchone()
    assert job is not None and job["status"] == "completed" and job["completed_at"] is not None
    assert job["completed_by_event_id"] is None
    audit = db.execute("SELECT actor_type, actor, detail FROM crm.audit_log WHERE entity = 'job' AND entity_id = %s "
                       "AND to_status = 'completed'", (inv["job_id"],)).fetchall()
    assert len(audit) == 1
    assert audit[0]["actor_type"] == "user" and audit[0]["actor"] == STAFF
    assert audit[0]["detail"]["completed_by"] == "void" and audit[0]["detail"]["voided_invoice_id"] == final


def test_voiding_the_only_invoice_of_a_job_leaves_the_job_open(
        db: Conn, crm_sandbox: RunningSandbox, make_invoice: MakeInvoice) -> None:
    only = make_invoice()
    assert send_invoice(only, STAFF).ok
    void_invoice(only, STAFF)
    job = db.execute("SELECT status FROM crm.jobs WHERE id = %s", (invoice_row(db, only)["job_id"],)).fetchone()
    assert job is not None and job["status"] != "completed"


# ---------------------------------------------------------------- 3. the lease and Stripe's 409

def test_the_send_lease_outlives_the_slowest_stripe_call(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_TIMEOUT_S", "60")  # 3 attempts x 60 s: one call may take 3 minutes
    worst = StripeGateway(stripe_target(load_settings(db))).call_budget_s()
    assert worst >= 180
    seen: list[float] = []

    def lease_left(step: str) -> None:
        if step == "complete":
            return  # released
        row = db.execute("SELECT extract(epoch FROM send_lease_until - now()) AS s FROM crm.invoices WHERE id = %s",
                         (draft_invoice,)).fetchone()
        assert row is not None
        seen.append(float(row["s"]))

    assert send_invoice(draft_invoice, STAFF, options=SendOptions(after_step=lease_left)).ok
    assert len(seen) == 5 and min(seen) > worst


def _second_send_during_a_slow_finalize(db: Conn, sbx: RunningSandbox, invoice_id: int,
                                        monkeypatch: pytest.MonkeyPatch, second_timeout_s: str
                                        ) -> tuple[SendResult, SendResult]:
    """A first Send hangs 2.5 s in finalize; meanwhile a second Send (to which the first one's
    lease looks run out) resumes the invoice and sends the same finalize request."""
    in_finalize = threading.Event()
    first: list[SendResult] = []

    def slow_finalize(step: str) -> None:
        if step == "lines":
            sbx.control.add_fault(service="stripe", method="POST", path="/v1/invoices/*/finalize", latency_ms=2500)
            in_finalize.set()

    runner = threading.Thread(target=lambda: first.append(
        send_invoice(invoice_id, STAFF, options=SendOptions(after_step=slow_finalize))))
    runner.start()
    assert in_finalize.wait(30)
    time.sleep(0.8)  # the first Send is now inside its finalize call
    monkeypatch.setenv("STRIPE_TIMEOUT_S", second_timeout_s)  # the second Send's gateway only
    second = send_invoice(invoice_id, "other@acme-hvac.test", options=SendOptions(now=LATER))
    runner.join(60)
    sbx.control.clear_faults()
    finalizes = [r["status"] for r in sbx.control.requests(service="stripe", method="POST")
                 if r["path"].endswith("/finalize")]
    assert 409 in finalizes, "the second finalize met the first one still in progress"
    assert first and not first[0].ok and "took over" in first[0].message
    return first[0], second


def test_a_second_send_during_a_running_stripe_step_waits_for_it_and_completes(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _first, second = _second_send_during_a_slow_finalize(db, crm_sandbox, draft_invoice, monkeypatch, "5")

    assert second.ok, second.message  # Stripe replayed the first finalize's answer to it
    objs = assert_exactly_one_of_each(crm_sandbox)
    assert invoice_row(db, draft_invoice)["hosted_invoice_url"] == objs["invoices"][0]["hosted_invoice_url"]


def test_a_second_send_that_cannot_wait_long_enough_stops_to_resume_later_and_discards_nothing(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _first, second = _second_send_during_a_slow_finalize(db, crm_sandbox, draft_invoice, monkeypatch, "0.2")

    assert not second.ok and second.invoice_status == "sending" and second.failed_step == "finalize"
    assert "still at the finalize step" in second.message
    inv = invoice_row(db, draft_invoice)
    assert inv["status"] == "sending" and inv["attention"] is None and inv["stripe_invoice_id"]

    third = send_invoice(draft_invoice, STAFF)
    assert third.ok, third.message
    objs = assert_exactly_one_of_each(crm_sandbox)
    assert invoice_row(db, draft_invoice)["hosted_invoice_url"] == objs["invoices"][0]["hosted_invoice_url"]


def test_a_refusal_that_discards_the_stripe_draft_clears_every_stripe_field(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    def stale_fields(step: str) -> None:
        if step == "lines":  # as an earlier attempt may have left them
            db.execute("UPDATE crm.invoices SET stripe_invoice_number = 'OLD-0001', invoice_pdf_url = "
                       "'https://old.example/pdf', stripe_total_cents = 1 WHERE id = %s", (draft_invoice,))
            crm_sandbox.control.add_fault(service="stripe", method="POST", path="/v1/invoices/*/finalize",
                                          status=400, times=1, message="Tax settings incomplete.")

    result = send_invoice(draft_invoice, STAFF, options=SendOptions(after_step=stale_fields))

    assert not result.ok and result.invoice_status == "draft"
    inv = invoice_row(db, draft_invoice)
    assert {k: inv[k] for k in ("stripe_invoice_id", "stripe_invoice_number", "hosted_invoice_url",
                                "invoice_pdf_url", "stripe_total_cents", "stripe_lines_added_at")} == dict.fromkeys(
        ("stripe_invoice_id", "stripe_invoice_number", "hosted_invoice_url", "invoice_pdf_url",
         "stripe_total_cents", "stripe_lines_added_at"))


# ---------------------------------------------------------------- 4. totals compared on the draft

def test_a_total_that_differs_at_stripe_stops_before_finalizing(db: Conn, crm_sandbox: RunningSandbox,
                                                              draft_invoice: int) -> None:
    def sneak_in_a_line(step: str) -> None:
        if step == "invoice":
            stripe_id = invoice_row(db, draft_invoice)["stripe_invoice_id"]
            stripe_client(crm_sandbox).v1.invoices.add_lines(
                stripe_id, {"lines": [{"amount": 500, "description": "Surprise fee"}]})

    result = send_invoice(draft_invoice, STAFF, options=SendOptions(after_step=sneak_in_a_line))

    assert not result.ok and result.failed_step == "lines"
    inv = invoice_row(db, draft_invoice)
    assert inv["attention"] == "total_mismatch" and "still a draft" in inv["attention_detail"]
    assert inv["hosted_invoice_url"] is None
    assert [i["status"] for i in sandbox_objects(crm_sandbox)["invoices"]] == ["draft"], "nothing payable at Stripe"
    assert not [r for r in crm_sandbox.control.requests(service="stripe") if r["path"].endswith("/finalize")]
    assert crm_sandbox.control.resend_emails() == []


def test_a_customer_with_a_stripe_credit_balance_can_be_sent_an_invoice(
        db: Conn, crm_sandbox: RunningSandbox, make_invoice: MakeInvoice) -> None:
    cus = stripe_client(crm_sandbox).v1.customers.create({"name": "Dana Whitfield", "email": "dana@example.com",
                                                          "balance": -5000})
    invoice_id = make_invoice(stripe_customer_id=cus.id)

    result = send_invoice(invoice_id, STAFF)

    assert result.ok, result.message
    (stripe_inv,) = sandbox_objects(crm_sandbox)["invoices"]
    assert stripe_inv["total"] == DEFAULT_TOTAL and stripe_inv["amount_due"] == DEFAULT_TOTAL - 5000
    assert invoice_row(db, invoice_id)["attention"] is None


# ---------------------------------------------------------------- 5. the Stripe customer follows the CRM

def test_an_email_corrected_after_a_lost_customer_answer_sends_at_once(
        db: Conn, crm_sandbox: RunningSandbox, draft_invoice: int) -> None:
    crm_sandbox.control.add_fault(service="stripe", method="POST", path="/v1/customers", status=500, phase="after",
                                  times=1)
    crm_sandbox.control.add_fault(service="stripe", method="POST", path="/v1/customers", status=503, times=2)
    assert not send_invoice(draft_invoice, STAFF).ok  # Stripe made the customer; the answer was lost
    db.execute("UPDATE crm.customers SET email = 'dana.w@example.com' WHERE id = %s",
               (invoice_row(db, draft_invoice)["customer_id"],))

    result = send_invoice(draft_invoice, STAFF, options=SendOptions(now=LATER))

    assert result.ok, result.message
    (stripe_inv,) = sandbox_objects(crm_sandbox)["invoices"]
    assert stripe_inv["customer_email"] == "dana.w@example.com"
    assert crm_sandbox.control.resend_emails()[0]["to"] == ["dana.w@example.com"]


def test_a_name_and_email_edited_in_the_crm_reach_the_stripe_customer_on_the_next_send(
        db: Conn, crm_sandbox: RunningSandbox, make_invoice: MakeInvoice) -> None:
    first = make_invoice()
    assert send_invoice(first, STAFF).ok
    customer_id = invoice_row(db, first)["customer_id"]
    db.execute("UPDATE crm.customers SET name = 'Dana Whitfield-Ortiz', email = 'dana.wo@example.com' WHERE id = %s",
               (customer_id,))

    since = max(r["time"] for r in crm_sandbox.control.requests())
    second = make_invoice(customer_id=customer_id)
    assert send_invoice(second, STAFF).ok
    calls = [r["path"] for r in crm_sandbox.control.requests(service="stripe") if r["time"] > since
             and r["method"] == "POST"]
    assert len(calls) == 4 and calls[0].startswith("/v1/customers/cus_")

    (cus,) = sandbox_objects(crm_sandbox)["customers"]
    assert (cus["name"], cus["email"]) == ("Dana Whitfield-Ortiz", "dana.wo@example.com")
    since = max(r["time"] for r in crm_sandbox.control.requests())
    third = make_invoice(customer_id=customer_id)
    assert send_invoice(third, STAFF).ok
    assert len([r for r in crm_sandbox.control.requests(service="stripe") if r["time"] > since
                and r["method"] == "POST"]) == 3


# ---------------------------------------------------------------- 6. each currency in its own minor unit

def test_a_yen_invoice_is_sent_and_emailed_in_yen(db: Conn, crm_sandbox: RunningSandbox,
                                                   make_invoice: MakeInvoice) -> None:
    invoice_id = make_invoice(lines=[("Furnace inspection", 1, 5000)])  # ¥5,000, as the editor stores it
    db.execute("UPDATE crm.invoices SET currency = 'jpy' WHERE id = %s", (invoice_id,))

    result = send_invoice(invoice_id, STAFF)

    assert result.ok, result.message
    assert "¥5,000" in result.message
    (stripe_inv,) = sandbox_objects(crm_sandbox)["invoices"]
    assert (stripe_inv["currency"], stripe_inv["total"]) == ("jpy", 5000)
    email = crm_sandbox.control.resend_emails()[0]
    assert "¥5,000" in email["text"] and "¥50" not in email["text"].replace("¥5,000", "")


def test_an_invoice_in_a_currency_the_crm_cannot_bill_is_refused(db: Conn, crm_sandbox: RunningSandbox,
                                                                 make_invoice: MakeInvoice) -> None:
    invoice_id = make_invoice()
    db.execute("UPDATE crm.invoices SET currency = 'kwd' WHERE id = %s", (invoice_id,))
    with pytest.raises(SendRefused, match="KWD has 3 decimals"):
        send_invoice(invoice_id, STAFF)
    assert crm_sandbox.control.requests() == []
