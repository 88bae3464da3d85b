"""Handing reminders to Resend and cancelling them there: one pass each, `now` passed in.

Dispatcher. Two sidecars (or two threads) may run at once. Each pass claims a batch of
queued reminders in a short transaction (`FOR UPDATE SKIP LOCKED`, then a claim token and
a lease), commits, and only then talks to Resend. We chose the lease over holding the row
lock during the HTTP call: a held lock would keep a transaction open for as long as Resend
takes, and the payment webhook cancelling that invoice's reminders would wait behind it.
A dispatcher that crashes after Resend accepted an email but before recording it leaves
the claim to expire; the next one sends the stored request again under the same
deterministic idempotency key, and Resend answers with the first email's id.

Cancel worker. Reminders flagged `resend_cancel = 'requested'` (by the payment transaction,
or by a hand-off that raced a payment) are cancelled at Resend, with exponential backoff
while Resend fails. Resend saying it can no longer cancel means the email went out.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import psycopg

from crm.reminder_emails import (
    parse_tones,
    reminder_tags,
    render_reminder,
    resend_params,
    tone_for,
)
from crm.resend_gateway import EmailError, ResendGateway
from crm.settings import Settings, load_settings
from db import reminders as q

Conn = psycopg.Connection[Any]
log = logging.getLogger("crm.reminders")

CLAIM_LEASE = timedelta(minutes=5)
CANCEL_LEASE = timedelta(minutes=2)
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)


def backoff(attempts: int, base: timedelta = RETRY_BASE, cap: timedelta = RETRY_CAP) -> timedelta:
    """Delay before retry number `attempts` (1, 2, ...): doubling from `base`, at most `cap`."""
    return min(cap, base * 2 ** max(0, min(attempts - 1, 20)))


def reminder_key(install_id: str, reminder_id: int) -> str:
    """One idempotency key per reminder for its whole life: a re-send replays the first email."""
    return f"crm-{install_id}-reminder-{reminder_id}"


def queue_due(conn: Conn, now: datetime) -> int:
    """The sidecar's stand-in for the pg_cron job: the same SQL function."""
    with conn.transaction():
        return q.queue_due(conn, now)


def _build_request(row: dict[str, Any], settings: Settings, now: datetime) -> tuple[str, datetime, dict[str, Any]]:
    send_at: datetime = row["send_at"]
    scheduled_at = max(send_at, now).astimezone(UTC)
    due: date = row["due_date"]
    send_day = send_at.astimezone(ZoneInfo(str(settings["business.timezone"]))).date()
    tone = tone_for(row["offset_days"], list(row["all_offsets"] or []),
                    parse_tones(settings["reminders.tones"]))
    email = render_reminder(
        tone=tone, business_name=str(settings["business.name"]), customer_name=row["customer_name"],
        number=row["stripe_invoice_number"] or f"#{row['invoice_id']}",
        amount_cents=int(row["amount_remaining_cents"]), currency=row["currency"], due=due,
        send_day=send_day, pay_url=row["hosted_invoice_url"] or "",
    )
    params = resend_params(
        email, from_address=str(settings["email.from"]), to_address=row["customer_email"],
        reply_to=str(settings["email.reply_to"]), scheduled_at=scheduled_at,
        tags=reminder_tags(row["invoice_id"], row["id"], row["sequence"]),
    )
    return email.subject, scheduled_at, params


def _claim_batch(conn: Conn, now: datetime, limit: int, token: UUID, lease: timedelta
                 ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Claim, and store each claimed reminder's request once; (row, request or None)."""
    claimed: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    with conn.transaction():
        rows = q.claim_queued(conn, now, limit, lease, token)
        if not rows:
            return []
        settings = load_settings(conn)
        install = q.install_id(conn)
        for row in rows:
            if row["request"] is not None:
                claimed.append((row, dict(row["request"])))
                continue
            if not row["customer_email"]:
                claimed.append((row, None))
                continue
            subject, scheduled_at, params = _build_request(row, settings, now)
            request = q.insert_reminder_message(
                conn, row["id"], row["invoice_id"], idempotency_key=reminder_key(install, row["id"]),
                from_address=params["from"], to_address=row["customer_email"], subject=subject,
                scheduled_at=scheduled_at, request=params)
            row["idempotency_key"] = reminder_key(install, row["id"])
            claimed.append((row, request))
    return claimed


def dispatch_queued(conn: Conn, gateway: ResendGateway, now: datetime, *, batch: int = 50,
                    lease: timedelta = CLAIM_LEASE, max_batches: int | None = None) -> dict[str, int]:
    """Hand queued reminders to Resend until none are left to claim; counts by outcome."""
    counts = {"scheduled": 0, "cancel_requested": 0, "failed": 0, "claim_lost": 0}
    token = uuid4()
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        claimed = _claim_batch(conn, now, batch, token, lease)
        if not claimed:
            break
        for row, request in claimed:
            outcome = _hand_off(conn, gateway, now, token, row, request)
            counts[outcome] = counts.get(outcome, 0) + 1
    with conn.transaction():
        counts["events_adopted"] = q.adopt_orphan_email_events(conn)
    return counts


def _hand_off(conn: Conn, gateway: ResendGateway, now: datetime, token: UUID, row: dict[str, Any],
              request: dict[str, Any] | None) -> str:
    reminder_id = int(row["id"])
    try:
        if request is None:
            raise EmailError("the customer has no email address", retryable=False)
        resend_id = gateway.send(request, idempotency_key=str(row["idempotency_key"]))
    except EmailError as exc:
        retry_at = now + backoff(int(row.get("attempts") or 0) + 1)
        with conn.transaction():
            q.record_send_failure(conn, reminder_id, token, str(exc), retry_at)
        log.warning("reminder hand-off failed", extra={"fields": {
            "reminder_id": reminder_id, "error": str(exc), "retryable": exc.retryable,
            "retry_at": retry_at.isoformat()}})
        return "failed"
    with conn.transaction():
        outcome = q.record_handoff(conn, reminder_id, token, resend_id, now)
    return outcome if outcome in ("scheduled", "cancel_requested", "claim_lost") else "claim_lost"


def cancel_requested(conn: Conn, gateway: ResendGateway, now: datetime, *, batch: int = 50,
                     lease: timedelta = CANCEL_LEASE) -> dict[str, int]:
    """Cancel at Resend the reminders flagged for it; counts by outcome."""
    counts = {"done": 0, "too_late": 0, "failed": 0}
    with conn.transaction():
        rows = q.claim_cancels(conn, now, batch, lease)
    for row in rows:
        reminder_id, resend_id = int(row["id"]), str(row["resend_id"])
        try:
            outcome = gateway.cancel(resend_id)
            if outcome == "too_late" and _already_cancelled(gateway, resend_id):
                # Our own earlier cancel went through but its result was never recorded.
                outcome = "cancelled"
        except EmailError as exc:
            retry_at = now + backoff(int(row["attempts"]) + 1)
            with conn.transaction():
                q.record_cancel(conn, reminder_id, "failed", now, str(exc), retry_at)
            log.warning("reminder cancel at Resend failed", extra={"fields": {
                "reminder_id": reminder_id, "resend_id": resend_id, "error": str(exc),
                "retry_at": retry_at.isoformat()}})
            counts["failed"] += 1
            continue
        with conn.transaction():
            recorded = q.record_cancel(conn, reminder_id, outcome, now)
        counts[recorded] = counts.get(recorded, 0) + 1
    return counts


def _already_cancelled(gateway: ResendGateway, resend_id: str) -> bool:
    try:
        return gateway.retrieve(resend_id).get("last_event") == "canceled"
    except EmailError:
        return False
