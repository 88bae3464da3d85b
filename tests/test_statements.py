"""Customer statements over real HTTP: the statement email in the sandbox's mailbox lists the
customer's open invoices, and each pay link (through Resend's click tracking) opens that
invoice's hosted payment page; recorded on the customer's timeline, never sent twice."""

from __future__ import annotations

import re
import time
from datetime import date
from html import unescape
from typing import Any

import httpx
import psycopg
import pytest

from crm.config.settings import load_settings
from crm.email.statements import StatementRefused, build_statement, send_statement
from crm.send.workflow import send_invoice
from sandbox.testing import RunningSandbox
from tests.fixtures.sandbox import BUSINESS_FROM
from tests.fixtures.workflow import STAFF, MakeInvoice

Conn = psycopg.Connection[dict[str, Any]]


def _customer_of(db: Conn, invoice_id: int) -> int:
    row = db.execute("SELECT customer_id FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return int(row["customer_id"])


def _open_invoices(db: Conn, make_invoice: MakeInvoice, count: int) -> tuple[int, list[int]]:
    first = make_invoice(name="Dana Whitfield", email="dana@example.com")
    customer_id = _customer_of(db, first)
    ids = [first] + [make_invoice(customer_id=customer_id, lines=[(f"Visit {n}", 1, 10000 + n)])
                     for n in range(1, count)]
    for invoice_id in ids:
        result = send_invoice(invoice_id, STAFF)
        assert result.ok, result.message
    return customer_id, ids


def _mailbox_email(sbx: RunningSandbox, subject_start: str) -> str:
    """The email's page in the sandbox mailbox, fetched over HTTP as a person would."""
    deadline = time.monotonic() + 15
    while True:
        box = httpx.get(f"{sbx.base_url}/mailbox", timeout=10, trust_env=False)
        assert box.status_code == 200
        found = re.search(r'<a href="([^"]+/mailbox/[^"/]+)">(' + re.escape(subject_start) + r'[^<]*)</a>', box.text)
        if found:
            page = httpx.get(unescape(found.group(1)), timeout=10, trust_env=False)
            assert page.status_code == 200
            body = unescape(page.text)  # the body sits in an iframe's srcdoc, escaped once
            if "/click?url=" in body:  # shown once Resend has delivered it
                return body
        assert time.monotonic() < deadline, "the statement did not reach the sandbox mailbox"
        time.sleep(0.2)


def test_statement_email_has_three_working_pay_links(db: Conn, crm_sandbox: RunningSandbox,
                                                     make_invoice: MakeInvoice) -> None:
    customer_id, ids = _open_invoices(db, make_invoice, 3)
    # One of them is late: the statement says by how many days.
    db.execute("UPDATE crm.invoices SET due_date = current_date - 9 WHERE id = %s", (ids[0],))
    invoices = {r["hosted_invoice_url"]: r for r in db.execute(
        "SELECT id, stripe_invoice_number, hosted_invoice_url FROM crm.invoices WHERE id = ANY(%s)", (ids,))}
    assert len(invoices) == 3

    result = send_statement(customer_id, STAFF)

    assert result.ok and not result.already_sent, result.message
    statements = [e for e in crm_sandbox.control.resend_emails() if e["subject"].startswith("Statement from")]
    assert len(statements) == 1 and BUSINESS_FROM in statements[0]["from"]
    assert statements[0]["to"] == ["dana@example.com"]
    assert "3 open invoices" in statements[0]["subject"]
    html = _mailbox_email(crm_sandbox, "Statement from")
    assert "9 days overdue" in html
    links = [unescape(h) for h in re.findall(r'href="([^"]+/click\?url=[^"]+)"', html)]
    assert len(links) == 3
    opened = set()
    for link in links:
        page = httpx.get(link, follow_redirects=True, timeout=10, trust_env=False)
        assert page.status_code == 200
        assert str(page.url) in invoices, page.url  # the click redirect lands on that invoice's hosted page
        inv = invoices[str(page.url)]
        assert inv["stripe_invoice_number"] in page.text
        opened.add(inv["id"])
    assert opened == set(ids)

    # On the customer's timeline: the email (kind 'statement', tracked by its Resend id) and an audit row.
    message = db.execute("SELECT kind, customer_id, invoice_id, resend_id, status, to_address FROM "
                         "crm.email_messages WHERE kind = 'statement'").fetchone()
    assert message is not None and message["customer_id"] == customer_id and message["invoice_id"] is None
    assert message["resend_id"] == result.resend_id == statements[0]["id"]
    audit = db.execute("SELECT actor, to_status, detail FROM crm.audit_log WHERE entity = 'customer' "
                       "AND entity_id = %s AND to_status = 'statement_sent'", (customer_id,)).fetchone()
    assert audit is not None and audit["actor"] == STAFF and sorted(audit["detail"]["invoices"]) == sorted(ids)

    # The same statement the same day is not sent twice (and the idempotency key is the same).
    again = send_statement(customer_id, STAFF)
    assert again.ok and again.already_sent
    assert len([e for e in crm_sandbox.control.resend_emails() if e["subject"].startswith("Statement")]) == 1


def test_statement_refuses_without_open_invoices_or_email(db: Conn, crm_sandbox: RunningSandbox,
                                                          make_invoice: MakeInvoice) -> None:
    draft = make_invoice(name="No Open", email="no.open@example.com")
    customer_id = _customer_of(db, draft)
    with pytest.raises(StatementRefused, match="no open invoices"):
        send_statement(customer_id, STAFF)
    db.execute("UPDATE crm.customers SET email = NULL WHERE id = %s", (customer_id,))
    with pytest.raises(StatementRefused, match="no valid email"):
        send_statement(customer_id, STAFF)
    assert crm_sandbox.control.resend_emails() == []


def test_statement_lines_days_overdue_and_totals(db: Conn, crm_sandbox: RunningSandbox,
                                                 make_invoice: MakeInvoice) -> None:
    customer_id, ids = _open_invoices(db, make_invoice, 2)
    db.execute("UPDATE crm.invoices SET due_date = %s WHERE id = %s", (date(2026, 1, 1), ids[1]))
    db.execute("UPDATE crm.invoices SET amount_paid_cents = 1000 WHERE id = %s", (ids[0],))  # partly paid
    settings = load_settings(db)
    statement = build_statement(db, customer_id, settings, date(2026, 1, 31))
    by_id = {ln.invoice_id: ln for ln in statement.lines}
    assert by_id[ids[1]].days_overdue == 30 and statement.lines[0].invoice_id == ids[1]  # oldest due first
    due = db.execute("SELECT id, amount_due_cents FROM crm.invoices WHERE id = ANY(%s)", (ids,)).fetchall()
    expected = sum(int(r["amount_due_cents"]) for r in due) - 1000
    assert statement.totals() == {"usd": expected}
    assert all(ln.pay_url and ln.pay_url.startswith(crm_sandbox.base_url) for ln in statement.lines)
    from crm.email.invoice_email import render_statement_page

    page = render_statement_page(statement)
    assert "30" in page and statement.total_label() in page and "<script" not in page
