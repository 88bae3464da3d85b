"""Reminders by text (crm/texts/reminders.py) against the sandbox's Twilio and the real sidecar:
a due reminder is scheduled at Twilio (ScheduleType=fixed, SendAt) and canceled there when the
invoice is paid (the invoice.paid webhook flags it, the cancel worker stops it); a bank payment
on its way pauses it (canceled at Twilio, scheduled again if the payment fails); after STOP
(21610) reminders go by email only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm.texts.gateway import TwilioGateway, twilio_target
from crm.texts.reminders import cancel_text_reminders, dispatch_text_reminders
from db import invoices
from sandbox.testing import RunningSandbox
from tests import stripe_payloads as sp
from tests.fixtures.sidecar import Sidecar
from tests.texts_helpers import PHONE, Conn, open_invoice, point_texts_at


@pytest.fixture
def texting(sidecar: Sidecar, fresh_sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch) -> RunningSandbox:
    point_texts_at(sidecar.db, fresh_sandbox, monkeypatch, callback_url=f"{sidecar.url}/webhooks/twilio")
    return fresh_sandbox


def _gateway(db: Conn) -> TwilioGateway:
    from crm.config.settings import load_settings

    return TwilioGateway(twilio_target(load_settings(db)))


def _due_reminder(db: Conn, sbx: RunningSandbox, channel: str = "both") -> dict[str, Any]:
    ids = open_invoice(db, sbx)
    db.execute("UPDATE crm.customers SET channel = %s WHERE id = %s", (channel, ids["customer_id"]))
    row = db.execute("INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at, status, queued_at) "
                     "VALUES (%s, 1, 7, now() + interval '20 hours', 'queued', now()) RETURNING id",
                     (ids["invoice_id"],)).fetchone()
    assert row is not None
    return {**ids, "reminder_id": row["id"]}


def _passes(db: Conn) -> tuple[dict[str, int], dict[str, int]]:
    with __import__("psycopg").connect(db.info.dsn, row_factory=__import__("psycopg").rows.dict_row) as conn:
        now = datetime.now(UTC)
        return dispatch_text_reminders(conn, _gateway(db), now), cancel_text_reminders(conn, _gateway(db), now)


def test_sms_reminder_scheduled_at_twilio_is_canceled_when_the_invoice_is_paid(sidecar: Sidecar,
                                                                                 texting: RunningSandbox) -> None:
    db = sidecar.db
    ids = _due_reminder(db, texting)
    scheduled, _ = _passes(db)
    assert scheduled["scheduled"] == 1
    [msg] = texting.control.twilio_messages()
    assert msg["status"] == "scheduled" and msg["to"] == PHONE and "reminder" in msg["body"]
    assert _passes(db)[0]["scheduled"] == 0, "one text per reminder slot"
    paid = sp.invoice(str(ids["stripe_invoice_id"]), status="paid", amount_due=34_500, amount_paid=34_500,
                      crm_invoice_id=ids["invoice_id"])
    assert sidecar.post(sp.event("invoice.paid", paid)).json()["outcome"] == "applied"
    _, cancelled = _passes(db)
    assert cancelled["done"] == 1
    [msg] = texting.control.twilio_messages()
    assert msg["status"] == "canceled"
    assert [h["status"] for h in msg["history"]] == ["scheduled", "canceled"]
    row = db.execute("SELECT status, twilio_cancel, cancel_reason FROM crm.text_messages").fetchone()
    assert row == {"status": "canceled", "twilio_cancel": "done", "cancel_reason": "paid"}


def test_sms_reminder_is_paused_during_a_bank_payment(sidecar: Sidecar, texting: RunningSandbox) -> None:
    db = sidecar.db
    ids = _due_reminder(db, texting)
    _passes(db)
    cus = sp.stripe_id("cus")
    db.execute("UPDATE crm.customers SET stripe_customer_id_test = %s WHERE id = %s", (cus, ids["customer_id"]))
    pi = {"id": sp.stripe_id("pi"), "object": "payment_intent", "amount": 34_500, "currency": "usd",
          "customer": cus, "description": "Payment for Invoice 7F3A-0001",
          "payment_method_types": ["us_bank_account"], "status": "processing", "livemode": False,
          "latest_charge": sp.stripe_id("ch")}
    # The invoice's default payment intent, as the Send records it after finalize.
    invoices.record_default_payment_intent(db, ids["invoice_id"], "test", pi["id"], sp.stripe_id("inpay"))
    resp = sidecar.post(sp.event("payment_intent.processing", pi))
    assert resp.json()["outcome"] == "applied", resp.text
    _, cancelled = _passes(db)
    assert cancelled["done"] == 1
    assert [m["status"] for m in texting.control.twilio_messages()] == ["canceled"]
    assert _passes(db)[0]["scheduled"] == 0, "nothing is scheduled while the bank payment is on its way"
    failed = {**pi, "status": "requires_payment_method", "last_payment_error": {
        "code": "insufficient_funds", "decline_code": None, "message": "The bank account has insufficient funds."}}
    assert sidecar.post(sp.event("payment_intent.payment_failed", failed)).json()["outcome"] == "applied"
    assert _passes(db)[0]["scheduled"] == 1, "the payment failed: the slot is texted again"
    assert sorted(m["status"] for m in texting.control.twilio_messages()) == ["canceled", "scheduled"]


def test_sms_after_stop_reminders_go_by_email_only(sidecar: Sidecar, texting: RunningSandbox) -> None:
    """Channel 'text': no email while texts reach the customer; after 21610 the email dispatcher
    takes the reminder and no text is scheduled."""
    from uuid import uuid4

    from db.reminders import claim_queued

    db = sidecar.db
    ids = _due_reminder(db, texting, channel="text")
    now = datetime.now(UTC)
    assert claim_queued(db, now, 10, timedelta(minutes=5), uuid4()) == [], "text only: no email"
    assert _passes(db)[0]["scheduled"] == 1
    db.execute("SELECT crm.set_texts_off(%s, 'replied STOP (Twilio error 21610)', 'test')", (ids["customer_id"],))
    _, cancelled = _passes(db)
    assert cancelled["done"] == 1 and [m["status"] for m in texting.control.twilio_messages()] == ["canceled"]
    assert _passes(db)[0]["scheduled"] == 0
    claimed = claim_queued(db, now + timedelta(minutes=6), 10, timedelta(minutes=5), uuid4())
    assert [r["id"] for r in claimed] == [ids["reminder_id"]], "the reminder goes by email"
