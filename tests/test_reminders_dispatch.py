"""The dispatcher and the cancel worker against the Resend sandbox over HTTP: each reminder
handed off once (also with two dispatchers and after a crash), late payments cancelled at
Resend, cancels retried through Resend 5xx, and the outage rule seen from the mailbox."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from crm.reminders import dispatch as rd
from db.reminders import queue_due
from sandbox.testing import RunningSandbox
from tests.test_reminders_support import (
    add_reminders,
    days,
    email_posts,
    gateway,
    mailbox,
    make_invoice,
    pay,
    queued_overdue_invoice,
    reminders_of,
    set_send_at,
    test_now,
)

Conn = psycopg.Connection[dict[str, Any]]


def one_scheduled_reminder(db: Conn, now: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An open invoice whose 7-day reminder goes out in 12 hours, handed to Resend."""
    inv, _rows = queued_overdue_invoice(db, now, timedelta(hours=12))
    assert rd.dispatch_queued(db, gateway(db), now)["scheduled"] == 1
    return inv, reminders_of(db, inv["invoice_id"])[0]


def test_two_dispatchers_send_each_of_1000_due_reminders_exactly_once(
        db: Conn, crm_sandbox: RunningSandbox, database_url: str) -> None:
    now = test_now()
    db.execute("INSERT INTO crm.customers (name, email) VALUES ('Bulk Co', 'ap@bulk.example')")
    db.execute("INSERT INTO crm.jobs (customer_id, title) VALUES (1, 'Maintenance plan')")
    db.execute(
        "INSERT INTO crm.invoices (job_id, customer_id, status, amount_due_cents, due_date, mode, stripe_invoice_id, "
        "stripe_invoice_number, hosted_invoice_url) SELECT 1, 1, 'open', 10000 + g, %s, 'test', 'in_bulk' || g, "
        "'B-' || g, 'https://pay.example.test/' || g FROM generate_series(1, 1000) g", ((now - days(7)).date(),))
    db.execute("INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at) "
               "SELECT id, 1, 7, %s FROM crm.invoices", (now + timedelta(hours=2),))
    assert queue_due(db, now) == 1000

    results: list[dict[str, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def dispatcher() -> None:
        try:
            with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
                barrier.wait()
                results.append(rd.dispatch_queued(conn, gateway(conn), now, batch=25))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []

    posts = email_posts(crm_sandbox)
    assert len(posts) == 1000, "one Resend request per reminder, none twice"
    assert len({p["idempotency_key"] for p in posts}) == 1000
    assert len(mailbox(crm_sandbox)) == 1000
    assert sum(r["scheduled"] for r in results) == 1000
    row = db.execute("SELECT count(*) FILTER (WHERE status = 'scheduled') AS scheduled, "
                     "count(DISTINCT resend_id) AS ids FROM crm.reminders").fetchone()
    assert row == {"scheduled": 1000, "ids": 1000}


def test_hand_off_schedules_the_email_at_its_send_time_with_tags(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, reminder = one_scheduled_reminder(db, now)

    email = mailbox(crm_sandbox)[reminder["resend_id"]]
    assert email["last_event"] == "scheduled"
    assert email["scheduled_at"].startswith(reminder["send_at"].strftime("%Y-%m-%dT%H:%M:%S"))
    assert {t["name"]: t["value"] for t in email["tags"]} == {
        "crm_invoice_id": str(inv["invoice_id"]), "crm_reminder_id": str(reminder["id"]), "kind": "reminder",
        "sequence": "1"}
    assert email["subject"].startswith("Reminder: invoice INV-")
    assert reminder["status"] == "scheduled" and reminder["handed_off_at"] == now
    msg = db.execute("SELECT kind, status, invoice_id FROM crm.email_messages WHERE reminder_id = %s",
                     (reminder["id"],)).fetchone()
    assert msg == {"kind": "reminder", "status": "scheduled", "invoice_id": inv["invoice_id"]}


def test_a_crash_after_resend_accepted_is_resent_under_the_same_key_and_replayed(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _rows = queued_overdue_invoice(db, now, timedelta(hours=3))
    claimed = rd._claim_batch(db, now, 10, rd.uuid4(), rd.CLAIM_LEASE)
    (row, request), = claimed
    assert request is not None
    first_id = gateway(db).send(request, idempotency_key=row["idempotency_key"])
    # ... and the dispatcher dies here, before recording first_id.

    assert rd.dispatch_queued(db, gateway(db), now + timedelta(minutes=1))["scheduled"] == 0, "lease still held"
    assert rd.dispatch_queued(db, gateway(db), now + timedelta(minutes=6))["scheduled"] == 1

    assert reminders_of(db, inv["invoice_id"])[0]["resend_id"] == first_id
    posts = email_posts(crm_sandbox)
    assert [p["idempotent_replayed"] for p in posts] == [False, True]
    assert len(mailbox(crm_sandbox)) == 1


def test_paid_after_hand_off_is_cancelled_at_resend_and_never_sent(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, reminder = one_scheduled_reminder(db, now)
    pay(db, inv)
    later = now + timedelta(minutes=1)

    assert rd.cancel_requested(db, gateway(db), later) == {"done": 1, "too_late": 0, "failed": 0}

    after = reminders_of(db, inv["invoice_id"])[0]
    assert (after["status"], after["resend_cancel"], after["cancel_reason"]) == ("cancelled", "done", "paid")
    crm_sandbox.control.flush_emails()  # every scheduled email whose time would come
    assert mailbox(crm_sandbox)[reminder["resend_id"]]["last_event"] == "canceled"
    assert rd.cancel_requested(db, gateway(db), later + days(1)) == {"done": 0, "too_late": 0, "failed": 0}


def test_cancel_is_retried_with_backoff_while_resend_fails(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, reminder = one_scheduled_reminder(db, now)
    pay(db, inv)
    crm_sandbox.control.add_fault(service="resend", method="POST", path="/emails/*/cancel", status=503, times=3)

    at = now + timedelta(minutes=1)
    outcomes = []
    for _ in range(10):
        counts = rd.cancel_requested(db, gateway(db), at)
        outcomes.append(counts)
        state = reminders_of(db, inv["invoice_id"])[0]
        if state["resend_cancel"] != "requested":
            break
        assert rd.cancel_requested(db, gateway(db), state["next_attempt_at"] - timedelta(seconds=1)) == \
            {"done": 0, "too_late": 0, "failed": 0}, "not retried before its backoff is over"
        at = state["next_attempt_at"]

    assert [o["failed"] for o in outcomes] == [1, 1, 1, 0] and outcomes[-1]["done"] == 1
    state = reminders_of(db, inv["invoice_id"])[0]
    assert (state["status"], state["resend_cancel"], state["attempts"]) == ("cancelled", "done", 3)
    assert mailbox(crm_sandbox)[reminder["resend_id"]]["last_event"] == "canceled"
    left = db.execute("SELECT count(*) AS n FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id "
                      "WHERE i.status = 'paid' AND r.status IN ('queued', 'scheduled')").fetchone()
    assert left == {"n": 0}


def test_a_cancel_that_comes_too_late_records_the_reminder_as_sent(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _reminder = one_scheduled_reminder(db, now)
    crm_sandbox.control.flush_emails()  # Resend sends it before the payment lands
    pay(db, inv)

    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["too_late"] == 1

    after = reminders_of(db, inv["invoice_id"])[0]
    assert (after["status"], after["resend_cancel"]) == ("sent", "too_late")


def test_paid_while_being_handed_off_is_cancelled_at_resend(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _rows = queued_overdue_invoice(db, now, timedelta(hours=5))
    token = rd.uuid4()
    (row, request), = rd._claim_batch(db, now, 10, token, rd.CLAIM_LEASE)
    pay(db, inv)  # lands between the claim and Resend's answer

    assert rd._hand_off(db, gateway(db), now, token, row, request) == "cancel_requested"
    assert rd.cancel_requested(db, gateway(db), now)["done"] == 1
    after = reminders_of(db, inv["invoice_id"])[0]
    assert (after["status"], after["resend_cancel"]) == ("cancelled", "done")
    assert mailbox(crm_sandbox)[after["resend_id"]]["last_event"] == "canceled"


def test_after_an_outage_one_reminder_the_14_day_one_is_sent(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    due = (now - days(15)).date()
    inv = make_invoice(db, due=due)
    rows = add_reminders(db, inv["invoice_id"], due)

    queue_due(db, now)
    rd.dispatch_queued(db, gateway(db), now)
    crm_sandbox.control.flush_emails()

    emails = list(mailbox(crm_sandbox).values())
    assert len(emails) == 1
    assert {t["name"]: t["value"] for t in emails[0]["tags"]}["crm_reminder_id"] == str(rows[1]["id"])
    assert emails[0]["last_event"] == "delivered"
    assert emails[0]["subject"].startswith("Overdue: invoice")


def test_a_reminder_for_a_customer_without_email_waits_with_an_error(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv = make_invoice(db, due=(now - days(7)).date(), email=None)
    rows = add_reminders(db, inv["invoice_id"], (now - days(7)).date())
    set_send_at(db, rows[0]["id"], now + timedelta(hours=1))
    queue_due(db, now)

    assert rd.dispatch_queued(db, gateway(db), now)["failed"] == 1
    after = reminders_of(db, inv["invoice_id"])[0]
    assert (after["status"], after["attempts"]) == ("queued", 1) and "no email address" in after["last_error"]
    assert email_posts(crm_sandbox) == []
