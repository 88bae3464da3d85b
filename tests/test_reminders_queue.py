"""Queueing reminders in the database: the pg_cron job, the hand-off window, the outage rule,
open invoices only, opted-out customers, and an invoice paid before its first reminder."""

from __future__ import annotations

from typing import Any

import psycopg

from crm.reminders.dispatch import dispatch_queued
from db.reminders import queue_due
from tests.test_reminders_support import (
    add_reminders,
    days,
    gateway,
    make_invoice,
    pay,
    queued_overdue_invoice,
    reminders_of,
    set_send_at,
    test_now,
)

Conn = psycopg.Connection[dict[str, Any]]


def statuses(db: Conn, invoice_id: int) -> dict[int, tuple[str, str | None]]:
    return {r["offset_days"]: (r["status"], r["cancel_reason"]) for r in reminders_of(db, invoice_id)}


def test_pg_cron_job_is_registered_and_queues_exactly_the_due_reminders(db: Conn, pg_cron: None) -> None:
    now = test_now()
    job = db.execute("SELECT command, schedule FROM cron.job WHERE jobname = 'crm-queue-due-reminders'").fetchone()
    assert job is not None, "the migrations register the pg_cron job"
    assert "crm.queue_due_reminders(" in job["command"] and job["schedule"] == "*/5 * * * *"

    due_soon = make_invoice(db, due=(now - days(7)).date())
    rows = add_reminders(db, due_soon["invoice_id"], (now - days(7)).date())
    set_send_at(db, rows[0]["id"], now + days(0.5))   # within the one-day hand-off window
    set_send_at(db, rows[1]["id"], now + days(3))     # not yet
    set_send_at(db, rows[2]["id"], now + days(20))
    paid = make_invoice(db, due=now.date())
    paid_rows = add_reminders(db, paid["invoice_id"], now.date())
    set_send_at(db, paid_rows[0]["id"], now + days(0.5))
    db.execute("UPDATE crm.invoices SET status = 'paid', paid_at = now() WHERE id = %s", (paid["invoice_id"],))
    opted = make_invoice(db, due=now.date(), opted_out=True)
    opted_rows = add_reminders(db, opted["invoice_id"], now.date())
    set_send_at(db, opted_rows[0]["id"], now + days(0.5))

    db.execute(job["command"])  # exactly what pg_cron runs, with the database's own now()

    queued = db.execute("SELECT id FROM crm.reminders WHERE status = 'queued'").fetchall()
    assert [r["id"] for r in queued] == [rows[0]["id"]]
    assert statuses(db, due_soon["invoice_id"]) == {7: ("queued", None), 14: ("pending", None),
                                                    30: ("pending", None)}
    assert statuses(db, paid["invoice_id"])[7] == ("cancelled", "paid"), "defence in depth for closed invoices"
    assert statuses(db, opted["invoice_id"]) == {7: ("cancelled", "opted_out"), 14: ("pending", None),
                                                 30: ("pending", None)}
    audit = db.execute("SELECT count(*) AS n FROM crm.audit_log WHERE entity = 'reminder' AND entity_id = %s "
                       "AND to_status = 'queued'", (rows[0]["id"],)).fetchone()
    assert audit is not None and audit["n"] == 1


def test_queueing_twice_queues_nothing_new(db: Conn) -> None:
    now = test_now()
    queued_overdue_invoice(db, now, days(0.2))
    assert queue_due(db, now + days(0.01)) == 0


def test_after_an_outage_only_the_latest_due_reminder_is_queued(db: Conn) -> None:
    now = test_now()
    due = (now - days(15)).date()   # the 7- and 14-day reminders both came due during the outage
    inv = make_invoice(db, due=due)
    add_reminders(db, inv["invoice_id"], due)

    assert queue_due(db, now) == 1

    assert statuses(db, inv["invoice_id"]) == {7: ("cancelled", "superseded"), 14: ("queued", None),
                                               30: ("pending", None)}


def test_invoice_paid_before_its_first_reminder_never_produces_an_email(db: Conn, crm_sandbox: Any) -> None:
    now = test_now()
    due = (now - days(6.5)).date()
    inv = make_invoice(db, due=due)
    add_reminders(db, inv["invoice_id"], due)
    pay(db, inv)

    for hours in range(0, 24 * 40, 6):   # every queue run and dispatch pass of the next 40 days
        at = now + days(hours / 24)
        queue_due(db, at)
        dispatch_queued(db, gateway(db), at)

    assert {s for s, _ in statuses(db, inv["invoice_id"]).values()} == {"cancelled"}
    assert crm_sandbox.control.requests(service="resend") == []
    assert db.execute("SELECT count(*) AS n FROM crm.email_messages").fetchone() == {"n": 0}
