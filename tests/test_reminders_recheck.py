"""Reminders and data that changed after they were queued: an opt-out stops what is queued or
already at Resend, and a stored request is re-checked at hand-off (amount due, address)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from crm.reminders import dispatch as rd
from db.customers import CustomerInput, update_customer
from db.reminders import queue_due
from sandbox.testing import RunningSandbox
from tests.test_reminders_support import (
    days,
    email_posts,
    gateway,
    mailbox,
    queued_overdue_invoice,
    reminders_of,
    test_now,
)

Conn = psycopg.Connection[dict[str, Any]]
STAFF = "staff@acme-hvac.test"


def opt_out(db: Conn, customer_id: int, email: str = "pat@example.com") -> None:
    """The dashboard's edit path: crm.customers updated with reminders_opt_out set."""
    update_customer(db, customer_id, CustomerInput(name="Pat Customer", email=email, reminders_opt_out=True), STAFF)


def queued_reminders(db: Conn, now: Any, n: int = 2) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return queued_overdue_invoice(db, now, *(timedelta(hours=3 + i) for i in range(n)),
                                  offsets=(7, 14, 30)[:n + 1])


def test_opting_out_cancels_queued_reminders_and_stops_those_resend_holds(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, rows = queued_reminders(db, now)
    # The first is handed to Resend; the second is still ours (queued).
    db.execute("UPDATE crm.reminders SET claimed_until = %s WHERE id = %s", (now + days(1), rows[1]["id"]))
    assert rd.dispatch_queued(db, gateway(db), now)["scheduled"] == 1
    db.execute("UPDATE crm.reminders SET claimed_until = NULL WHERE id = %s", (rows[1]["id"],))

    opt_out(db, inv["customer_id"])

    first, second, _third = reminders_of(db, inv["invoice_id"])
    assert (second["status"], second["cancel_reason"]) == ("cancelled", "opted_out")
    assert (first["status"], first["resend_cancel"], first["cancel_reason"]) == ("scheduled", "requested", "opted_out")
    assert rd.dispatch_queued(db, gateway(db), now)["scheduled"] == 0
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["done"] == 1
    crm_sandbox.control.flush_emails()
    assert [e["last_event"] for e in mailbox(crm_sandbox).values()] == ["canceled"]
    audit = db.execute("SELECT actor FROM crm.audit_log WHERE entity = 'reminder' AND actor = %s", (STAFF,)).fetchall()
    assert len(audit) == 2


def test_a_customer_opted_out_after_queueing_gets_nothing_at_hand_off(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _rows = queued_reminders(db, now, n=1)
    db.execute("UPDATE crm.customers SET reminders_opt_out = true WHERE id = %s", (inv["customer_id"],))

    rd.dispatch_queued(db, gateway(db), now)

    assert email_posts(crm_sandbox) == []
    first = reminders_of(db, inv["invoice_id"])[0]
    assert (first["status"], first["cancel_reason"]) == ("cancelled", "opted_out")


def _stored_then_failed(db: Conn, sbx: RunningSandbox, now: Any, *, reached_resend: bool) -> dict[str, Any]:
    """A queued reminder whose request was stored and sent, and Resend answered 500 (having
    scheduled it first when `reached_resend`): it stays queued with its stored request."""
    inv, _rows = queued_reminders(db, now, n=1)
    sbx.control.add_fault(service="resend", method="POST", path="/emails", status=500, times=1,
                          phase="after" if reached_resend else "before")
    assert rd.dispatch_queued(db, gateway(db), now)["failed"] == 1
    return inv


def _after_retry(db: Conn, inv: dict[str, Any], now: Any) -> dict[str, Any]:
    retry = reminders_of(db, inv["invoice_id"])[0]["claimed_until"]
    assert rd.dispatch_queued(db, gateway(db), retry)["scheduled"] == 1
    return reminders_of(db, inv["invoice_id"])[0]


def test_a_partial_payment_after_the_request_was_stored_reaches_the_customer_only_as_the_new_amount(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    """The partial payment itself retires the stored request (crm.requeue_invoice_reminders,
    the same transaction as the payment) and a fresh reminder for the same slot is built from
    the remaining amount; the hand-off re-check is the second line, for changes no trigger sees
    (an address, an opt-out)."""
    now = test_now()
    inv = _stored_then_failed(db, crm_sandbox, now, reached_resend=False)
    db.execute("UPDATE crm.invoices SET amount_paid_cents = 10000 WHERE id = %s", (inv["invoice_id"],))

    retry = now + timedelta(minutes=5)
    rd.cancel_requested(db, gateway(db), retry)  # the old request: replayed under its key, cancelled
    queue_due(db, retry)
    assert rd.dispatch_queued(db, gateway(db), retry)["scheduled"] == 1

    live = [r for r in reminders_of(db, inv["invoice_id"]) if r["status"] == "scheduled"]
    assert len(live) == 1
    emails = mailbox(crm_sandbox)
    email = emails.pop(live[0]["resend_id"])
    assert "$150.00" in email["text"] and "$250.00" not in email["text"]
    assert email["last_event"] == "scheduled"
    assert [e["last_event"] for e in emails.values()] == ["canceled"], "the old amount never goes out"


def test_an_old_request_resend_already_held_is_cancelled_before_the_corrected_one_goes(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv = _stored_then_failed(db, crm_sandbox, now, reached_resend=True)
    db.execute("UPDATE crm.customers SET email = 'pat.new@example.com' WHERE id = %s", (inv["customer_id"],))

    after = _after_retry(db, inv, now)

    emails = mailbox(crm_sandbox)
    assert len(emails) == 2
    assert emails[after["resend_id"]]["to"] == ["pat.new@example.com"]
    assert emails[after["resend_id"]]["last_event"] == "scheduled"
    (old,) = [e for i, e in emails.items() if i != after["resend_id"]]
    assert old["to"] == ["pat@example.com"] and old["last_event"] == "canceled"
    msg = db.execute("SELECT to_address, superseded_request, revision FROM crm.email_messages WHERE reminder_id = %s",
                     (after["id"],)).fetchone()
    assert msg == {"to_address": "pat.new@example.com", "superseded_request": None, "revision": 1}


def test_an_unchanged_stored_request_is_sent_again_under_its_own_key(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv = _stored_then_failed(db, crm_sandbox, now, reached_resend=True)

    after = _after_retry(db, inv, now)

    keys = [p["idempotency_key"] for p in email_posts(crm_sandbox)]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(mailbox(crm_sandbox)) == 1 and after["status"] == "scheduled"
