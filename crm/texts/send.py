"""Text the pay link: the one workflow for every text the CRM sends now (a pay link from the
Collect screen, a test text from Settings).

Twilio has no idempotency key, so the text is recorded (status 'sending') before Twilio is
called, in one SQL call that also finds an equal text from the last minute: a double tap, or
two tabs, send one text. A record still 'sending' without a SID after the call's time is
one whose answer was lost (timeout, crash): a retry first asks Twilio for a text with the same
body to the same number since the record was made, and records its SID instead of sending
again. A refusal (21211, 21614, 21610: the customer replied STOP) is recorded with Twilio's
code; 21610 turns the customer's texts off in the same call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crm.config.settings import Settings, load_settings
from crm.money.amounts import format_cents
from crm.texts.body import pay_link_text, settings_test_text
from crm.texts.errors import sentence
from crm.texts.gateway import TextError, TwilioGateway, twilio_target
from crm.texts.phone import PhoneError, to_e164
from db import texts as q
from db.pool import connection

log = logging.getLogger("crm.texts")

# Taps within this window send one text (the later ones show the first one's progress).
DOUBLE_TAP_WINDOW = timedelta(seconds=60)
# A record this young without a SID is taken to be in flight, not lost.
IN_FLIGHT = timedelta(seconds=15)


class TextRefused(ValueError):
    """Nothing was sent: the message says why (for the field or the screen)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TextResult:
    ok: bool
    message: str
    text_id: int | None = None
    sid: str | None = None
    status: str | None = None
    already: bool = False


def _status_callback(settings: Settings) -> str | None:
    return str(settings["twilio.status_callback_url"]) or None


def pay_link_body(invoice: dict[str, object], settings: Settings) -> str:
    amount = format_cents(int(str(invoice["amount_remaining_cents"])), str(invoice["currency"]))
    return pay_link_text(business=str(settings["business.name"]), amount=amount,
                         number=str(invoice["stripe_invoice_number"] or f"#{invoice['id']}"),
                         url=str(invoice["hosted_invoice_url"]))


def text_pay_link(invoice_id: int, phone: str, actor: str, *, gateway: TwilioGateway | None = None) -> TextResult:
    """Text the invoice's pay link to `phone` (as typed; read in the business's country).
    Raises TextRefused before anything is recorded or sent."""
    with connection() as conn:
        settings = load_settings(conn)
        invoice = q.invoice_for_text(conn, invoice_id)
    if invoice is None:
        raise TextRefused(f"There is no invoice {invoice_id}.")
    try:
        to = to_e164(phone, str(settings["business.country"]))
    except PhoneError as exc:
        raise TextRefused(str(exc), field="phone") from None
    if invoice["status"] != "open" or not invoice["hosted_invoice_url"]:
        raise TextRefused(f"Invoice {invoice['stripe_invoice_number'] or invoice_id} is {invoice['status']}: "
                          "only an open invoice with a pay link can be texted.")
    if invoice["amount_remaining_cents"] <= 0:
        raise TextRefused("Nothing is left to pay on this invoice.")
    if invoice["texts_off"] and to == invoice["phone"]:
        raise TextRefused(f"{invoice['customer_name']} replied STOP: no texts until they reply START. "
                          "Email it instead.", field="phone")
    body = pay_link_body(invoice, settings)
    with connection() as conn:
        if not invoice["phone"]:
            q.save_customer_phone(conn, int(invoice["customer_id"]), to, actor)
        record = q.begin_text(conn, kind="pay_link", invoice_id=invoice_id, customer_id=int(invoice["customer_id"]),
                              to=to, body=body, by=actor, window=DOUBLE_TAP_WINDOW)
    return _send(record, to, body, settings, gateway)


def send_test_text(phone: str, actor: str, *, gateway: TwilioGateway | None = None) -> TextResult:
    """Settings' Send test text: proves the Account SID, token and Messaging Service work."""
    with connection() as conn:
        settings = load_settings(conn)
    try:
        to = to_e164(phone, str(settings["business.country"]))
    except PhoneError as exc:
        raise TextRefused(str(exc), field="phone") from None
    body = settings_test_text(str(settings["business.name"]))
    with connection() as conn:
        record = q.begin_text(conn, kind="test", invoice_id=None, customer_id=None, to=to, body=body, by=actor,
                              window=DOUBLE_TAP_WINDOW)
    return _send(record, to, body, settings, gateway)


def _send(record: dict[str, object], to: str, body: str, settings: Settings,
          gateway: TwilioGateway | None) -> TextResult:
    text_id = int(str(record["id"]))
    created = record["created_at"]
    assert isinstance(created, datetime)
    if record["existing"]:
        # No SID and no error yet, and young: the first tap's call is still going.
        in_flight = not record["error_message"] and datetime.now(UTC) - created < IN_FLIGHT
        if record["sid"] or in_flight:
            return TextResult(True, f"Already texted to {to} at {created:%H:%M}: it is not sent twice.", text_id,
                              str(record["sid"] or "") or None, str(record["status"]), already=True)
    gw = gateway or TwilioGateway(twilio_target(settings))
    try:
        found = gw.find_sent(to, body, created - timedelta(seconds=5)) if record["existing"] else None
        msg = found or gw.send(to, body, status_callback=_status_callback(settings))
    except TextError as exc:
        if exc.retryable or exc.code is None:
            with connection() as conn:
                q.note_error(conn, text_id, str(exc))
            log.warning("text %s not sent yet: %s", text_id, exc)
            return TextResult(False, f"{exc} Tap again to retry: it will not be sent twice.", text_id,
                              status="sending")
        with connection() as conn:
            status = q.record_answer(conn, text_id, sid=None, status="failed", error_code=exc.code,
                                     error_message=sentence(exc.code))
        return TextResult(False, sentence(exc.code) or str(exc), text_id, status=status)
    with connection() as conn:
        status = q.record_answer(conn, text_id, sid=str(msg.sid), status=str(msg.status))
    log.info("text %s accepted by Twilio as %s (%s)", text_id, msg.sid, status)
    return TextResult(True, f"Texted to {to}.", text_id, str(msg.sid), status)
