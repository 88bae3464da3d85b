"""Reminders by text: scheduled at Twilio (Messaging Service, ScheduleType=fixed, SendAt) and
cancelled there (Status=canceled) when they must not go. One pass each, `now` passed in.

The same design as the email reminders (crm/reminder_dispatch.py): the queueing function
decides which reminder slots are due (open invoice, no bank payment on its way, not opted out);
this dispatcher gives each slot of a customer who wants texts (channel 'text' or 'both', a
phone, texts on) one text, recorded before Twilio is called (crm.begin_text_reminder: one
live text per slot, so two dispatchers cannot both send). Whatever stops the email reminders
(payment, void, uncollectible, a bank payment starting, a changed amount, an opt-out, STOP)
flags the texts in the same transaction (crm.flag_invoice_texts); the cancel worker stops each
at Twilio. A slot whose text was cancelled for a bank payment gets a new one if the payment
fails and the invoice is open again. Customers with channel 'text' get no email reminder
while texts can reach them (db/reminders.py's claim); with texts off they get email.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from crm.config.settings import load_settings
from crm.money.amounts import format_cents
from crm.texts.body import pay_link_text
from crm.texts.errors import sentence
from crm.texts.gateway import TextError, TwilioGateway
from crm.texts.send import IN_FLIGHT
from db import texts as q
from db.pool import Conn

log = logging.getLogger("crm.texts.reminders")

# Twilio takes SendAt 15 minutes to 35 days ahead; a slot already due goes out a little later.
MIN_LEAD = timedelta(minutes=16)


def send_at_for(slot: datetime, now: datetime) -> datetime:
    return max(slot, now + MIN_LEAD)


def dispatch_text_reminders(conn: Conn, gateway: TwilioGateway, now: datetime, *, limit: int = 50) -> dict[str, int]:
    counts = {"scheduled": 0, "failed": 0, "taken": 0}
    with conn.transaction():
        settings = load_settings(conn)
        rows = q.text_reminder_candidates(conn, limit)
    callback = str(settings["twilio.status_callback_url"]) or None
    for row in rows:
        body = pay_link_text(business=str(settings["business.name"]),
                             amount=format_cents(int(row["amount_remaining_cents"]), str(row["currency"])),
                             number=str(row["stripe_invoice_number"] or f"#{row['invoice_id']}"),
                             url=str(row["hosted_invoice_url"]), reminder=True)
        when = send_at_for(row["send_at"], now)
        with conn.transaction():
            text_id = q.begin_text_reminder(conn, row, body, when)
        if text_id is None:
            counts["taken"] += 1
            continue
        try:
            msg = gateway.send(str(row["phone"]), body, status_callback=callback, send_at=when)
        except TextError as exc:
            with conn.transaction():
                if exc.retryable or exc.code is None:
                    q.note_error(conn, text_id, str(exc))  # stays 'sending': the cancel worker or a retry finds it
                else:
                    q.record_answer(conn, text_id, sid=None, status="failed", error_code=exc.code,
                                    error_message=sentence(exc.code))
            counts["failed"] += 1
            continue
        with conn.transaction():
            q.record_answer(conn, text_id, sid=str(msg.sid), status=str(msg.status))
        counts["scheduled"] += 1
    return counts


def cancel_text_reminders(conn: Conn, gateway: TwilioGateway, now: datetime, *, limit: int = 50) -> dict[str, int]:
    counts = {"done": 0, "too_late": 0, "failed": 0, "waiting": 0}
    with conn.transaction():
        rows = q.texts_to_cancel(conn, limit)
    for row in rows:
        sid = row["sid"]
        try:
            if sid is None:
                if now - row["created_at"] < IN_FLIGHT:
                    counts["waiting"] += 1  # its send may still be answering
                    continue
                found = gateway.find_sent(row["to_number"], row["body"], row["created_at"] - timedelta(seconds=5))
                if found is None:
                    outcome = _record(conn, int(row["id"]), "done")  # never reached Twilio
                    counts[outcome] = counts.get(outcome, 0) + 1
                    continue
                sid = str(found.sid)
                with conn.transaction():
                    q.record_answer(conn, int(row["id"]), sid=sid, status=str(found.status))
            outcome = _cancel(gateway, sid)
        except TextError as exc:
            with conn.transaction():
                q.record_cancel(conn, int(row["id"]), "failed", str(exc))
            counts["failed"] += 1
            continue
        recorded = _record(conn, int(row["id"]), outcome)
        counts[recorded] = counts.get(recorded, 0) + 1
    return counts


def _cancel(gateway: TwilioGateway, sid: str) -> str:
    """'done' when Twilio holds it canceled; 'too_late' when it had gone out."""
    try:
        gateway.cancel(sid)
        return "done"
    except TextError as exc:
        if exc.status != 400:
            raise
    status = str(gateway.fetch(sid).status)
    return "done" if status == "canceled" else "too_late"


def _record(conn: Conn, text_id: int, outcome: str) -> str:
    with conn.transaction():
        recorded: Any = q.record_cancel(conn, text_id, outcome)
    return str(recorded)
