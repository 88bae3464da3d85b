"""Design invariant 3 for a reminder whose hand-off to Resend was never recorded: the
dispatcher died after sending (or before its request arrived), the invoice was paid
within the claim's lease, and the cancel worker still stops the email at Resend by
replaying the stored request under the same key. Real Postgres, the Resend sandbox over
HTTP, time passed as parameters (the sandbox's clock is the wall clock, so `now` is read
from it once, as input)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from crm.reminders import dispatch as rd
from db import invoices
from db.reminders import record_handoff
from sandbox.testing import RunningSandbox
from tests.test_reminders_support import (
    days,
    email_posts,
    gateway,
    pay,
    queued_overdue_invoice,
    reminders_of,
    test_now,
)

Conn = psycopg.Connection[dict[str, Any]]


def emails_for_invoice(sbx: RunningSandbox, invoice_id: int) -> list[dict[str, Any]]:
    """What the Resend sandbox holds for one invoice, found by the tags we send."""
    return [e for e in sbx.control.resend_emails()
            if {t["name"]: t["value"] for t in e.get("tags") or []}.get("crm_invoice_id") == str(invoice_id)]


def claimed_reminder(db: Conn, now: datetime, send_in: timedelta = timedelta(hours=3)
                     ) -> tuple[dict[str, Any], UUID, dict[str, Any], dict[str, Any]]:
    """An open invoice whose first reminder a dispatcher has claimed (request stored, nothing sent)."""
    inv, _rows = queued_overdue_invoice(db, now, send_in)
    token = rd.uuid4()
    (row, request), = rd._claim_batch(db, now, 10, token, rd.CLAIM_LEASE)
    assert request is not None
    return inv, token, row, request


def reminder_state(db: Conn, invoice_id: int) -> dict[str, Any]:
    r = reminders_of(db, invoice_id)[0]
    return {k: r[k] for k in ("status", "resend_cancel", "cancel_reason", "resend_id")}


def message_of(db: Conn, reminder_id: int) -> dict[str, Any]:
    row = db.execute("SELECT status, resend_id FROM crm.email_messages WHERE reminder_id = %s",
                     (reminder_id,)).fetchone()
    assert row is not None
    return row


def test_crash_after_resend_accepted_then_paid_within_the_lease_is_cancelled_at_resend(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _token, row, request = claimed_reminder(db, now)
    first_id = gateway(db).send(request, idempotency_key=row["idempotency_key"])
    # ... the dispatcher dies here, before recording first_id; the customer pays a minute later.
    pay(db, inv)

    assert reminder_state(db, inv["invoice_id"]) == {
        "status": "cancelled", "resend_cancel": "requested", "cancel_reason": "paid", "resend_id": None}
    assert rd.dispatch_queued(db, gateway(db), now + timedelta(minutes=6))["scheduled"] == 0, "paid: never resent"

    counts = rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))

    assert counts == {"done": 1, "too_late": 0, "failed": 0, "replayed": 1}
    assert [p["idempotent_replayed"] for p in email_posts(crm_sandbox)] == [False, True], \
        "the replay found the first email instead of making a second"
    assert reminder_state(db, inv["invoice_id"]) == {
        "status": "cancelled", "resend_cancel": "done", "cancel_reason": "paid", "resend_id": first_id}
    assert message_of(db, row["id"]) == {"status": "cancelled", "resend_id": first_id}
    crm_sandbox.control.flush_emails()  # every scheduled email whose time would come
    assert [(e["id"], e["last_event"]) for e in emails_for_invoice(crm_sandbox, inv["invoice_id"])] == [
        (first_id, "canceled")], "nothing left scheduled (or sent) for the paid invoice"
    assert rd.cancel_requested(db, gateway(db), now + days(1)) == {"done": 0, "too_late": 0, "failed": 0}


def test_paid_before_the_crashed_dispatchers_request_reached_resend_is_scheduled_then_cancelled(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _token, row, _request = claimed_reminder(db, now)
    # The dispatcher dies after storing the request, before it reached Resend.
    pay(db, inv)

    counts = rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))

    assert counts == {"done": 1, "too_late": 0, "failed": 0, "replayed": 1}
    posts = email_posts(crm_sandbox)
    assert [(p["idempotency_key"], p["idempotent_replayed"]) for p in posts] == [(row["idempotency_key"], False)]
    state = reminder_state(db, inv["invoice_id"])
    assert (state["status"], state["resend_cancel"]) == ("cancelled", "done") and state["resend_id"]
    crm_sandbox.control.flush_emails()
    assert [(e["id"], e["last_event"]) for e in emails_for_invoice(crm_sandbox, inv["invoice_id"])] == [
        (state["resend_id"], "canceled")]


def test_an_unrecorded_reminder_too_close_to_its_time_is_not_replayed_and_kept_as_possibly_sent(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _token, row, request = claimed_reminder(db, now, send_in=timedelta(hours=3))
    gateway(db).send(request, idempotency_key=row["idempotency_key"])
    pay(db, inv)
    scheduled_at = reminders_of(db, inv["invoice_id"])[0]["send_at"]

    # The cancel worker only gets to it a minute before the email's time (it was down).
    counts = rd.cancel_requested(db, gateway(db), scheduled_at - timedelta(minutes=1))

    assert counts == {"done": 0, "too_late": 0, "failed": 0, "possibly_sent": 1}
    assert len(email_posts(crm_sandbox)) == 1, "no replay: it could have sent the email right away"
    after = reminders_of(db, inv["invoice_id"])[0]
    assert (after["status"], after["resend_cancel"], after["resend_id"]) == ("cancelled", "possibly_sent", None)
    assert after["last_error"].startswith("possibly sent: its hand-off to Resend was never recorded")
    audit = db.execute("SELECT detail FROM crm.audit_log WHERE entity = 'reminder' AND entity_id = %s "
                       "AND actor = 'reminder_cancel'", (row["id"],)).fetchall()
    assert [a["detail"]["resend_cancel"] for a in audit] == ["possibly_sent"]
    assert rd.cancel_requested(db, gateway(db), scheduled_at) == {"done": 0, "too_late": 0, "failed": 0}


def test_a_replay_that_fails_at_resend_is_retried_with_backoff_then_cancelled(
        db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _token, row, request = claimed_reminder(db, now)
    first_id = gateway(db).send(request, idempotency_key=row["idempotency_key"])
    pay(db, inv)
    crm_sandbox.control.add_fault(service="resend", method="POST", path="/emails", status=503, times=1)

    at = now + timedelta(minutes=1)
    assert rd.cancel_requested(db, gateway(db), at) == {"done": 0, "too_late": 0, "failed": 1}
    retry_at = reminders_of(db, inv["invoice_id"])[0]["next_attempt_at"]
    assert retry_at > at
    assert rd.cancel_requested(db, gateway(db), retry_at - timedelta(seconds=1))["failed"] == 0, "not before backoff"
    assert rd.cancel_requested(db, gateway(db), retry_at) == {"done": 1, "too_late": 0, "failed": 0, "replayed": 1}

    assert reminder_state(db, inv["invoice_id"])["resend_id"] == first_id
    assert [e["last_event"] for e in emails_for_invoice(crm_sandbox, inv["invoice_id"])] == ["canceled"]


def test_a_slow_dispatcher_recording_after_the_replay_loses_its_claim(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, token, row, request = claimed_reminder(db, now)
    first_id = gateway(db).send(request, idempotency_key=row["idempotency_key"])
    pay(db, inv)  # the dispatcher is alive but slow: Resend's answer is still on its way
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["done"] == 1

    assert record_handoff(db, row["id"], token, first_id, now + timedelta(minutes=1)) == "claim_lost"
    assert reminder_state(db, inv["invoice_id"]) == {
        "status": "cancelled", "resend_cancel": "done", "cancel_reason": "paid", "resend_id": first_id}
    assert [e["last_event"] for e in emails_for_invoice(crm_sandbox, inv["invoice_id"])] == ["canceled"]


def test_voiding_from_the_dashboard_also_stops_an_unrecorded_reminder(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _token, row, request = claimed_reminder(db, now)
    first_id = gateway(db).send(request, idempotency_key=row["idempotency_key"])
    with db.transaction():  # what crm.send.followups.void_invoice does after Stripe voided it
        assert invoices.mark_void(db, inv["invoice_id"]) == "open"
        assert invoices.cancel_reminders(db, inv["invoice_id"], "void") == 3

    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1))["done"] == 1
    assert reminder_state(db, inv["invoice_id"]) == {
        "status": "cancelled", "resend_cancel": "done", "cancel_reason": "void", "resend_id": first_id}


def test_a_reminder_cancelled_before_any_claim_asks_nothing_of_resend(db: Conn, crm_sandbox: RunningSandbox) -> None:
    now = test_now()
    inv, _rows = queued_overdue_invoice(db, now, timedelta(hours=3))
    pay(db, inv)

    assert [(r["status"], r["resend_cancel"]) for r in reminders_of(db, inv["invoice_id"])] == [
        ("cancelled", None)] * 3
    assert rd.cancel_requested(db, gateway(db), now + timedelta(minutes=1)) == {"done": 0, "too_late": 0, "failed": 0}
    assert email_posts(crm_sandbox) == []


# ---------------------------------------------------------------- the pure replay rule

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_replay_is_safe_only_while_the_email_is_comfortably_ahead_and_within_the_key_window() -> None:
    stored = T0 - timedelta(hours=1)
    assert rd.replay_refusal(T0 + timedelta(hours=3), stored, T0) is None
    assert rd.replay_refusal(T0 + rd.REPLAY_MARGIN + timedelta(seconds=1), stored, T0) is None
    assert rd.replay_refusal(T0 + rd.REPLAY_MARGIN, stored, T0) is not None
    assert rd.replay_refusal(T0 - timedelta(minutes=5), stored, T0) is not None
    assert rd.replay_refusal(None, stored, T0) is not None
    refusal = rd.replay_refusal(T0 + timedelta(hours=3), T0 - timedelta(hours=24), T0)
    assert refusal is not None and "idempotency window" in refusal
    assert rd.replay_refusal(T0 + timedelta(hours=3), T0 - timedelta(hours=23), T0) is None
