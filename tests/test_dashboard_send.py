"""Send via Stripe from the Invoices page against the sandbox (real stripe/resend clients
over HTTP): confirm, result with the pay link, a failure that says what failed, retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from sandbox.testing import RunningSandbox


def _open(at: Any, invoice_id: int) -> Any:
    at.session_state["open_invoice"] = invoice_id
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_send_via_stripe_shows_the_pay_link(db: psycopg.Connection[Any], crm_sandbox: RunningSandbox,
                                            make_invoice: Callable[..., int], app_as: Callable[..., Any]) -> None:
    invoice_id = make_invoice()
    at = _open(app_as("staff", "pages/invoices.py"), invoice_id)
    at.button(key=f"send_{invoice_id}").click().run()
    assert any("Stripe finalizes the invoice" in w.value for w in at.warning)
    assert db.execute("SELECT status FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone() == {
        "status": "draft"}, "nothing is sent before the confirmation"
    at.button(key=f"confirm_send_btn_{invoice_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    row = db.execute("SELECT status, hosted_invoice_url FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None and row["status"] == "open" and row["hosted_invoice_url"]
    assert any(s.value.startswith("Sent.") for s in at.success), [s.value for s in at.success]
    assert row["hosted_invoice_url"] in [c.value for c in at.code]
    assert any("· open" in h.value for h in at.subheader)
    assert any(b.label == "Resend email" for b in at.button)


def test_a_failed_send_says_what_failed_and_retries(db: psycopg.Connection[Any], crm_sandbox: RunningSandbox,
                                                    make_invoice: Callable[..., int],
                                                    app_as: Callable[..., Any]) -> None:
    invoice_id = make_invoice()
    crm_sandbox.control.add_fault(service="stripe", path="/v1/invoices/*/finalize", method="POST", status=400,
                                  times=1)
    at = _open(app_as("staff", "pages/invoices.py"), invoice_id)
    at.button(key=f"send_{invoice_id}").click().run()
    at.button(key=f"confirm_send_btn_{invoice_id}").click().run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("Not sent — Finalizing (pay link)") for e in errors), errors
    assert db.execute("SELECT status FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone() != {"status": "open"}
    at.button(key=f"retry_send_{invoice_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Sent.") for s in at.success), [e.value for e in at.error]
    assert db.execute("SELECT status FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone() == {"status": "open"}


def test_resend_the_email_then_void(db: psycopg.Connection[Any], crm_sandbox: RunningSandbox,
                                    make_invoice: Callable[..., int], app_as: Callable[..., Any]) -> None:
    from crm.send.workflow import send_invoice

    invoice_id = make_invoice()
    assert send_invoice(invoice_id, "staff@example.com").ok
    at = _open(app_as("staff", "pages/invoices.py"), invoice_id)
    url = db.execute("SELECT hosted_invoice_url FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert url is not None and url["hosted_invoice_url"] in [c.value for c in at.code], "the pay link to copy"
    at.button(key=f"resend_{invoice_id}").click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.success, "the resend reports what it did"
    assert len(crm_sandbox.control.resend_emails()) == 2
    at.button(key=f"void_{invoice_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert db.execute("SELECT status FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone() == {"status": "void"}
    assert any("· void" in h.value for h in at.subheader)
