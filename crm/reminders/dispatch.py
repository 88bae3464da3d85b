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
A flagged reminder without a Resend id is one whose hand-off was never recorded (the
dispatcher died after sending; db/migrations/0009): the worker replays the stored request
under the same key to learn the id (Resend answers with the first email, or schedules it
now if the first request never arrived), records it and cancels it in the same pass.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from crm.config.settings import Settings, load_settings
from crm.email.resend_gateway import EmailError, ResendGateway
from crm.reminders.emails import (
    parse_tones,
    reminder_tags,
    render_reminder,
    resend_params,
    tone_for,
)
from db import reminders as q
from db.driver import Conn

log = logging.getLogger("crm.reminders")

CLAIM_LEASE = timedelta(minutes=5)
# A replay is only safe while the email's scheduled time is ahead by more than the replay and
# the cancel take (with the gateway's own retries) plus clock skew with Resend.
REPLAY_MARGIN = timedelta(minutes=2)
# Resend replays a key's first answer for 24 h from when it got the request; the request was
# stored just before it was sent, so its stored time is an early bound, less skew.
IDEMPOTENCY_REPLAY_WINDOW = timedelta(hours=24) - timedelta(minutes=5)
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
            if row["reminders_opt_out"]:
                # Opted out after it was queued: the customer who said stop gets nothing.
                q.cancel_claimed_opted_out(conn, row["id"], token, now)
                continue
            if row["request"] is not None:
                claimed.append((row, recheck_stored_request(conn, row, settings, install, now)))
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


_CONTENT_FIELDS = ("from", "to", "subject", "html", "text", "reply_to", "tags")


def recheck_stored_request(conn: Conn, row: dict[str, Any], settings: Settings, install: str,
                           now: datetime) -> dict[str, Any] | None:
    """The request to hand off for a reminder whose request an earlier claim stored.

    The stored request keeps the amount and address it was rendered with; since then a
    partial payment may have lowered the amount due, or staff corrected the email. It is
    rendered again from today's data: unchanged, the stored one goes (same key, so a request
    Resend already has is replayed, not doubled); changed, the new one is stored under a new
    idempotency key (the old key would be refused for a different payload) and the old one is
    kept as superseded until `_retire_superseded` made sure it is not waiting at Resend.
    None when the customer no longer has an address (the hand-off then fails with that reason).
    """
    stored = dict(row["request"])
    if not row["customer_email"]:
        return None
    subject, scheduled_at, fresh = _build_request(row, settings, now)
    if all(stored.get(k) == fresh.get(k) for k in _CONTENT_FIELDS):
        return stored
    revision = int(row["revision"] or 0) + 1
    key = f"{reminder_key(install, int(row['id']))}-r{revision}"
    kept = q.replace_stale_request(conn, int(row["id"]), idempotency_key=key, to_address=row["customer_email"],
                                   subject=subject, scheduled_at=scheduled_at, request=fresh)
    row.update(kept)
    log.info("reminder request re-rendered at hand-off", extra={"fields": {
        "reminder_id": row["id"], "revision": revision, "to_changed": stored.get("to") != fresh.get("to")}})
    return dict(kept["request"])


def _retire_superseded(conn: Conn, gateway: ResendGateway, now: datetime, token: UUID,
                       row: dict[str, Any]) -> str | None:
    """Make sure a replaced request is not waiting at Resend before its replacement goes.

    Replayed under its own key (Resend answers with the email it holds, or schedules it now
    if the first request never arrived) and cancelled at once. Returns None when the new
    request may go; otherwise the hand-off's outcome ('failed': retry later; 'scheduled':
    the old email had already gone out, so it counts as this reminder and no second goes).
    """
    reminder_id = int(row["id"])
    refusal = replay_refusal(row["superseded_scheduled_at"], row["superseded_stored_at"], now)
    if refusal is not None:
        # Past its time: if Resend had it, it went out already, and a replay could send it
        # now. The customer still gets the corrected reminder; the note says what may have gone.
        with conn.transaction():
            q.clear_superseded(conn, reminder_id, "possibly_sent", refusal)
        return None
    try:
        old_id = gateway.send(dict(row["superseded_request"]), idempotency_key=str(row["superseded_key"]))
        result = gateway.cancel(old_id)
        if result == "too_late" and _already_cancelled(gateway, old_id):
            result = "cancelled"
    except EmailError as exc:
        retry_at = now + backoff(int(row.get("attempts") or 0) + 1)
        with conn.transaction():
            q.record_send_failure(conn, reminder_id, token, f"retiring the replaced request: {exc}", retry_at)
        return "failed"
    if result == "too_late":
        # The replaced email went out before it could be stopped: that was this reminder.
        with conn.transaction():
            q.clear_superseded(conn, reminder_id, "sent", "the replaced request had already gone out")
            outcome = q.record_handoff(conn, reminder_id, token, old_id, now)
        return outcome if outcome in ("scheduled", "cancel_requested") else "claim_lost"
    with conn.transaction():
        q.clear_superseded(conn, reminder_id, "cancelled", f"Resend email {old_id} cancelled")
    return None


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
    if request is not None and row.get("superseded_request") is not None:
        retired = _retire_superseded(conn, gateway, now, token, row)
        if retired is not None:
            return retired
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


def replay_refusal(scheduled_at: datetime | None, request_stored_at: datetime | None,
                   now: datetime) -> str | None:
    """Why replaying an unrecorded reminder's stored request would be unsafe; None when it is safe.

    Too close to (or past) its scheduled time, a replay that creates the email (the first
    request never reached Resend) could send it before the cancel lands, and the email goes
    out at that time anyway if the first request did arrive. Past the idempotency window,
    Resend would schedule a second email instead of naming the first.
    """
    if scheduled_at is None or scheduled_at <= now + REPLAY_MARGIN:
        when = scheduled_at.astimezone(UTC).isoformat() if scheduled_at else "unknown"
        return (f"possibly sent: its hand-off to Resend was never recorded and it was scheduled for {when}, "
                "too soon to replay the request safely (a replay could send it)")
    if request_stored_at is not None and now - request_stored_at >= IDEMPOTENCY_REPLAY_WINDOW:
        return ("possibly sent: its hand-off to Resend was never recorded and the request is older than "
                "Resend's idempotency window, so a replay would not find the first email")
    return None


def _learn_unrecorded_id(conn: Conn, gateway: ResendGateway, now: datetime, row: dict[str, Any],
                         counts: dict[str, int]) -> str | None:
    """The Resend id of a flagged reminder whose hand-off was never recorded, or None if there
    is nothing to cancel now (counted as possibly_sent, not_sent, failed or not_requested)."""
    reminder_id = int(row["id"])
    request = row["request"]
    if request is None:
        with conn.transaction():
            outcome = q.record_unrecorded(conn, reminder_id, "not_sent", now, note="no request was stored")
        counts[outcome] = counts.get(outcome, 0) + 1
        return None
    refusal = replay_refusal(row["scheduled_at"], row["request_stored_at"], now)
    if refusal is not None:
        # Not replayed, on purpose: recorded honestly as possibly sent, for staff to see.
        with conn.transaction():
            outcome = q.record_unrecorded(conn, reminder_id, "possibly_sent", now, note=refusal)
        log.warning("reminder possibly sent after it was cancelled", extra={"fields": {
            "reminder_id": reminder_id, "reason": refusal}})
        counts[outcome] = counts.get(outcome, 0) + 1
        return None
    try:
        replayed = gateway.send(dict(request), idempotency_key=str(row["idempotency_key"]))
    except EmailError as exc:
        retry_at = now + backoff(int(row["attempts"]) + 1)
        with conn.transaction():
            q.record_cancel(conn, reminder_id, "failed", now, f"replay to learn the Resend id: {exc}", retry_at)
        log.warning("reminder replay at Resend failed", extra={"fields": {
            "reminder_id": reminder_id, "error": str(exc), "retry_at": retry_at.isoformat()}})
        counts["failed"] += 1
        return None
    with conn.transaction():
        resend_id = q.record_unrecorded(conn, reminder_id, "replayed", now, resend_id=replayed)
    if resend_id == "not_requested":
        counts["not_requested"] = counts.get("not_requested", 0) + 1
        return None
    if resend_id != replayed:
        # Cannot happen within the idempotency window; if it does, both must be stopped.
        log.error("reminder replay returned another email", extra={"fields": {
            "reminder_id": reminder_id, "recorded": resend_id, "replayed": replayed}})
        try:
            extra = gateway.cancel(replayed)
        except EmailError as exc:
            extra = str(exc)
        if extra != "cancelled":
            log.error("reminder replay's extra email could not be cancelled", extra={"fields": {
                "reminder_id": reminder_id, "resend_id": replayed, "result": extra}})
    counts["replayed"] = counts.get("replayed", 0) + 1
    return resend_id


def cancel_requested(conn: Conn, gateway: ResendGateway, now: datetime, *, batch: int = 50,
                     lease: timedelta = CANCEL_LEASE) -> dict[str, int]:
    """Cancel at Resend the reminders flagged for it; counts by outcome (done, too_late, failed,
    and when they happen replayed, possibly_sent, not_sent, not_requested)."""
    counts = {"done": 0, "too_late": 0, "failed": 0}
    with conn.transaction():
        rows = q.claim_cancels(conn, now, batch, lease)
    for row in rows:
        reminder_id = int(row["id"])
        known = row["resend_id"] or _learn_unrecorded_id(conn, gateway, now, row, counts)
        if known is None:
            continue
        resend_id = str(known)
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
