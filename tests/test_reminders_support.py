"""Helpers shared by the reminder and Resend webhook tests (no tests here).

Invoices are created directly in SQL as the Send workflow leaves them (open, test mode,
Stripe id set), so these tests do not depend on the workflow. Times are built from one
`now` a test picks; the sandbox clock runs on the wall clock, so `now` is taken from it
once (as input, never asserted).
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from crm.config.settings import load_settings
from crm.email.resend_gateway import ResendGateway, resend_target
from crm.reminders.schedule import plan_reminders
from db.reminders import insert_planned, queue_due
from db.stripe_events import apply_event
from sandbox.signing import svix_headers
from sandbox.testing import RunningSandbox
from tests import stripe_payloads as sp

Conn = psycopg.Connection[dict[str, Any]]
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"reminder-tests-secret-0123456789").decode()


def test_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


test_now.__test__ = False  # type: ignore[attr-defined]


def make_invoice(db: Conn, *, due: date, amount: int = 25_000, email: str | None = "pat@example.com",
                 opted_out: bool = False, name: str = "Pat Customer") -> dict[str, Any]:
    cust = db.execute("INSERT INTO crm.customers (name, email, reminders_opt_out) VALUES (%s, %s, %s) RETURNING id",
                      (name, email, opted_out)).fetchone()
    assert cust is not None
    job = db.execute("INSERT INTO crm.jobs (customer_id, title) VALUES (%s, 'Furnace repair') RETURNING id",
                     (cust["id"],)).fetchone()
    assert job is not None
    sid = sp.stripe_id("in")
    inv = db.execute(
        "INSERT INTO crm.invoices (job_id, customer_id, status, amount_due_cents, due_date, mode, stripe_invoice_id, "
        "stripe_invoice_number, hosted_invoice_url, sent_at) VALUES (%s, %s, 'open', %s, %s, 'test', %s, %s, %s, "
        "now()) RETURNING id",
        (job["id"], cust["id"], amount, due, sid, f"INV-{secrets.token_hex(2).upper()}",
         f"https://pay.example.test/{sid}"),
    ).fetchone()
    assert inv is not None
    return {"invoice_id": inv["id"], "customer_id": cust["id"], "job_id": job["id"], "stripe_invoice_id": sid,
            "amount": amount}


def add_reminders(db: Conn, invoice_id: int, due: date, offsets: tuple[int, ...] = (7, 14, 30),
                  hour: int = 9, tz: str = "America/Chicago") -> list[dict[str, Any]]:
    with db.transaction():
        insert_planned(db, invoice_id, plan_reminders(due, offsets, hour, tz))
    return reminders_of(db, invoice_id)


def queued_overdue_invoice(db: Conn, now: datetime, *send_in: timedelta,
                           offsets: tuple[int, ...] = (7, 14, 30)) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reminder tests' common start: an open invoice due a week before `now` with its
    reminders planned; the first len(send_in) come due at now + each and are queued, as the
    pg_cron job would queue them (every one of them, or this fails)."""
    inv = make_invoice(db, due=(now - days(7)).date())
    rows = add_reminders(db, inv["invoice_id"], (now - days(7)).date(), offsets=offsets)
    for row, delay in zip(rows, send_in, strict=False):
        set_send_at(db, row["id"], now + delay)
    assert queue_due(db, now) == len(send_in)
    return inv, rows


def reminders_of(db: Conn, invoice_id: int) -> list[dict[str, Any]]:
    return db.execute("SELECT * FROM crm.reminders WHERE invoice_id = %s ORDER BY sequence", (invoice_id,)).fetchall()


def set_send_at(db: Conn, reminder_id: int, when: datetime) -> None:
    db.execute("UPDATE crm.reminders SET send_at = %s WHERE id = %s", (when, reminder_id))


def pay(db: Conn, inv: dict[str, Any]) -> None:
    """The real payment path: crm.apply_stripe_event with an invoice.paid event."""
    evt = sp.event("invoice.paid", sp.invoice(inv["stripe_invoice_id"], status="paid", amount_due=inv["amount"],
                                              amount_paid=inv["amount"], crm_invoice_id=inv["invoice_id"]))
    result = apply_event(db, evt, "test")
    assert result.outcome == "applied", result


def gateway(db: Conn, attempts: int = 1) -> ResendGateway:
    return ResendGateway(resend_target(load_settings(db)), attempts=attempts, backoff_s=0.0)


def signed(payload: dict[str, Any], secret: str = WEBHOOK_SECRET, msg_id: str | None = None,
           timestamp: int | None = None, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    ts = timestamp if timestamp is not None else int((now or datetime.now(UTC)).timestamp())
    headers = svix_headers(secret, msg_id or f"msg_{secrets.token_hex(8)}", ts, body)
    return body, {"content-type": "application/json", **headers}


def resend_event(event_type: str, email_id: str, when: datetime, **data: Any) -> dict[str, Any]:
    return {"type": event_type, "created_at": when.isoformat().replace("+00:00", "Z"),
            "data": {"email_id": email_id, "from": "billing@acme-hvac.test", "to": ["pat@example.com"],
                     "subject": "Invoice", **data}}


def days(n: float) -> timedelta:
    return timedelta(days=n)


def email_posts(sbx: RunningSandbox) -> list[dict[str, Any]]:
    """Every email POST the Resend sandbox received (its own request log)."""
    return sbx.control.requests(service="resend", method="POST", path="/emails")


def mailbox(sbx: RunningSandbox) -> dict[str, dict[str, Any]]:
    """The emails the Resend sandbox holds, by id."""
    return {e["id"]: e for e in sbx.control.resend_emails()}
