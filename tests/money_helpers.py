"""Helpers for the money tests (bank debits, disputes, partial payments): an invoice sent with
the real Send workflow to the sandbox, the sandbox delivering Stripe's events to the real
sidecar over HTTP (subscribed to the production list of event types), and reminder steps
run at a `now` the test picks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from crm.reminders import dispatch as rd
from crm.send.workflow import send_invoice
from db.reminders import queue_due
from sandbox.testing import RunningSandbox
from tests.fixtures.sidecar import Sidecar
from tests.fixtures.workflow import STAFF, MakeInvoice
from tests.reconcile_helpers import deliveries_settled, wait_until, wire_sidecar
from tests.test_reminders_support import gateway, reminders_of

Conn = psycopg.Connection[dict[str, Any]]
FOUR_DAYS = 4 * 86400


@pytest.fixture
def wired(db: Conn, crm_sandbox: RunningSandbox, sidecar: Sidecar) -> RunningSandbox:
    """The CRM pointed at the sandbox; the sandbox delivering to the running sidecar. Bank debits
    settle only when a test says so (as if the four business days had not passed yet)."""
    wire_sidecar(db, sidecar.url)
    crm_sandbox.control.set_bank_debits(settle_delay_s=FOUR_DAYS)
    return crm_sandbox


def sent_invoice(db: Conn, make_invoice: MakeInvoice, **kw: Any) -> dict[str, Any]:
    """A draft sent with Send via Stripe: open at the sandbox and in the CRM, with its reminders."""
    invoice_id = make_invoice(**kw)
    result = send_invoice(invoice_id, STAFF)
    assert result.ok, result.message
    row = db.execute("SELECT id, stripe_invoice_id, amount_due_cents FROM crm.invoices WHERE id = %s",
                     (invoice_id,)).fetchone()
    assert row is not None
    return {"invoice_id": invoice_id, "stripe_invoice_id": row["stripe_invoice_id"], "amount": row["amount_due_cents"]}


def settled(sbx: RunningSandbox) -> None:
    wait_until(lambda: deliveries_settled(sbx), what="webhook deliveries settled")


def invoice_row(db: Conn, invoice_id: int) -> dict[str, Any]:
    row = db.execute("SELECT * FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert row is not None
    return row


def hand_first_reminder_to_resend(db: Conn, invoice_id: int, now: datetime) -> dict[str, Any]:
    """Bring the invoice's first reminder within the hand-off window and hand it to Resend."""
    first = reminders_of(db, invoice_id)[0]
    db.execute("UPDATE crm.reminders SET send_at = %s WHERE id = %s", (now + timedelta(hours=3), first["id"]))
    assert queue_due(db, now) == 1
    assert rd.dispatch_queued(db, gateway(db), now)["scheduled"] == 1
    return dict(db.execute("SELECT * FROM crm.reminders WHERE id = %s", (first["id"],)).fetchone() or {})


def reminder_emails(sbx: RunningSandbox, invoice_id: int) -> list[dict[str, Any]]:
    """The reminder emails the Resend sandbox holds for one invoice, oldest first."""
    return [e for e in sbx.control.resend_emails()
            if {t["name"]: t["value"] for t in e.get("tags") or []}.get("crm_invoice_id") == str(invoice_id)
            and {t["name"]: t["value"] for t in e.get("tags") or []}.get("kind") == "reminder"]
