"""Twilio Programmable Messaging: checking a send, the Message resource, scheduling, delivery
and the signed status callbacks it posts.

A text is `queued` when accepted, then `sent` and `delivered` a moment later (or `failed` /
`undelivered` with an error code, for numbers told to fail). A scheduled text (Messaging
Service, ``ScheduleType=fixed``, ``SendAt`` 15 minutes to 35 days ahead) is `scheduled` until
its time, when the tick releases it, or `canceled` by ``Status=canceled``. Status callbacks go
to the message's ``StatusCallback``, form-encoded and signed with ``X-Twilio-Signature`` exactly
as Twilio signs them, once each (Twilio does not retry them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import re
import secrets

import phonenumbers

from sandbox.context import Sandbox
from sandbox.state import Obj
from sandbox.webhook_delivery import Target

log = logging.getLogger("sandbox.twilio")

API_VERSION = "2010-04-01"
MAX_BODY = 1600
SCHEDULE_MIN_S = 15 * 60
SCHEDULE_MAX_S = 35 * 86400
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# GSM 03.38: the basic set costs one septet, the extension set two (escape + char).
_GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                 "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")
ERROR_TEXT = {
    21211: "Invalid 'To' Phone Number",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30007: "Message filtered",
    30034: "Message from an unregistered number",
}


class TwilioError(Exception):
    """Rendered as Twilio's error body ``{"code", "message", "more_info", "status"}``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> Obj:
        return {"code": self.code, "message": self.message,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}", "status": self.status}


def rfc2822(ts: float) -> str:
    return email.utils.format_datetime(dt.datetime.fromtimestamp(int(ts), dt.UTC)).replace("-0000", "+0000")


def segments(body: str) -> int:
    """How many SMS segments `body` is billed as (GSM-7: 160, or 153 each when split; UCS-2: 70 / 67)."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXT for ch in body):
        units = sum(2 if ch in _GSM_EXT else 1 for ch in body)
        return 1 if units <= 160 else -(-units // 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def _check_to(sb: Sandbox, to: str) -> None:
    """21211 for what is not a phone number, 21614 for a landline, 21610 after STOP."""
    try:
        parsed = phonenumbers.parse(to, None)
        valid = bool(_E164.match(to)) and phonenumbers.is_valid_number(parsed)
    except phonenumbers.NumberParseException:
        valid = False
    if not valid:
        raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to[:40]}")
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.FIXED_LINE \
            or sb.store.twilio_numbers.get(to, {}).get("landline"):
        raise TwilioError(400, 21614, f"'To' number {to} is not a valid mobile number")
    if sb.store.twilio_numbers.get(to, {}).get("opted_out"):
        raise TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")


def _send_at(form: dict[str, str], now: float, service: str | None) -> float | None:
    """The release time of a scheduled text, or None; Twilio's 351xx errors otherwise."""
    kind, when = form.get("ScheduleType"), form.get("SendAt")
    if kind is None and when is None:
        return None
    if kind is None:
        raise TwilioError(400, 35112, "ScheduleType is required when SendAt is set")
    if kind != "fixed":
        raise TwilioError(400, 35126, f"The ScheduleType value {kind!r} is not supported for this channel")
    if not when:
        raise TwilioError(400, 35111, "SendAt timestamp is missing")
    if not service:
        raise TwilioError(400, 35118, "MessagingServiceSid is required to schedule a message")
    try:
        at = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise ValueError("no time zone")
    except ValueError:
        raise TwilioError(400, 35113, "SendAt is not a valid ISO-8601 timestamp in UTC") from None
    ahead = at.timestamp() - now
    if ahead < SCHEDULE_MIN_S:
        raise TwilioError(400, 35114, "SendAt time must be between 900 seconds and 35 days (3024000 seconds) "
                                      "in the future, inclusive.")
    if ahead > SCHEDULE_MAX_S:
        raise TwilioError(400, 35115, "SendAt time must be between 900 seconds and 35 days (3024000 seconds) "
                                      "in the future, inclusive.")
    return at.timestamp()


def create(sb: Sandbox, form: dict[str, str]) -> Obj:
    """Check a send as Twilio does and store the Message; raises TwilioError."""
    cfg = sb.settings
    to = form.get("To") or ""
    if not to:
        raise TwilioError(400, 21604, "A 'To' phone number is required.")
    body = form.get("Body")
    if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
        raise TwilioError(400, 21602, "Message body is required.")
    if body is not None and len(body) > MAX_BODY:
        raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    service = form.get("MessagingServiceSid")
    sender = form.get("From")
    if service is not None and service != cfg.twilio_messaging_service_sid:
        raise TwilioError(400, 21705, f"The Messaging Service Sid {service[:40]} is invalid.")
    if not service and not sender:
        raise TwilioError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
    if sender and sender != cfg.twilio_from_number:
        raise TwilioError(400, 21606, f"The From phone number {sender[:40]} is not a valid, SMS-capable "
                                      "inbound phone number or short code for your account.")
    now = sb.store.now_f()
    release = _send_at(form, now, service)
    _check_to(sb, to)
    sid = message_sid()
    uri = f"/{API_VERSION}/Accounts/{cfg.twilio_account_sid}/Messages/{sid}.json"
    msg: Obj = {
        "account_sid": cfg.twilio_account_sid, "api_version": API_VERSION, "body": body or "",
        "date_created": rfc2822(now), "date_sent": None, "date_updated": rfc2822(now),
        "direction": "outbound-api", "error_code": None, "error_message": None,
        # Sent through a Messaging Service, the sender is picked when it goes out.
        "from": None if service else sender, "messaging_service_sid": service, "num_media": "0",
        "num_segments": "0" if service else str(segments(body or "")), "price": None, "price_unit": "USD",
        "sid": sid, "status": "scheduled" if release is not None else "queued",
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")}, "to": to, "uri": uri,
        "_callback": form.get("StatusCallback"), "_send_at": release, "_history": [],
    }
    sb.store.twilio_messages[sid] = msg
    _history(msg, msg["status"], now)
    if release is None:
        _go_out_later(sb, sid)
    return msg


def public(msg: Obj) -> Obj:
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def cancel(sb: Sandbox, msg: Obj) -> None:
    if msg["status"] != "scheduled":
        raise TwilioError(400, 20009, f"Message {msg['sid']} is {msg['status']}: only a scheduled message "
                                      "can be canceled.")
    _set_status(sb, msg, "canceled")


def redact(sb: Sandbox, msg: Obj, body: str) -> None:
    if body != "":
        raise TwilioError(400, 20001, "Body can only be set to an empty string (to redact the message).")
    msg["body"] = ""


def tick(sb: Sandbox, flush_all: bool = False) -> int:
    """Release scheduled texts whose SendAt has come (all of them with `flush_all`)."""
    now = sb.store.now_f()
    due = [m for m in sb.store.twilio_messages.values()
           if m["status"] == "scheduled" and (flush_all or (m["_send_at"] or 0) <= now)]
    for msg in sorted(due, key=lambda m: m["_send_at"] or 0):
        _set_status(sb, msg, "queued")
        _go_out(sb, msg)
    if due:
        sb.store.save()
    return len(due)


def _go_out_later(sb: Sandbox, sid: str) -> None:
    """Carriers answer after the API does: the text moves on once the create has returned."""
    def run() -> None:
        msg = sb.store.twilio_messages.get(sid)
        if msg is not None and msg["status"] == "queued":
            _go_out(sb, msg)
    try:
        asyncio.get_running_loop().call_later(0.01, run)
    except RuntimeError:  # no loop (a direct call in a unit test): go out now
        run()


def _go_out(sb: Sandbox, msg: Obj) -> None:
    number = sb.store.twilio_numbers.get(msg["to"], {})
    now = sb.store.now_f()
    if msg["messaging_service_sid"]:
        msg["from"] = sb.settings.twilio_from_number
        msg["num_segments"] = str(segments(msg["body"]))
    if number.get("opted_out"):  # replied STOP after a scheduled text was accepted
        _fail(sb, msg, "failed", 21610)
        return
    msg["date_sent"] = rfc2822(now)
    msg["price"] = f"-{0.0079 * int(msg['num_segments']):.5f}"
    _set_status(sb, msg, "sent")
    fail = number.get("fail")
    delay = sb.settings.twilio_delivery_s

    def arrive() -> None:
        if fail:
            _fail(sb, msg, "undelivered", int(fail))
        else:
            _set_status(sb, msg, "delivered")
        sb.store.save()
    try:
        asyncio.get_running_loop().call_later(delay, arrive)
    except RuntimeError:
        arrive()


def _fail(sb: Sandbox, msg: Obj, status: str, code: int) -> None:
    msg["error_code"] = code
    msg["error_message"] = ERROR_TEXT.get(code, "Message delivery failed")
    _set_status(sb, msg, status)


def _history(msg: Obj, status: str, now: float) -> None:
    msg["_history"].append({"status": status, "at": now})


def _set_status(sb: Sandbox, msg: Obj, status: str) -> None:
    now = sb.store.now_f()
    msg["status"], msg["date_updated"] = status, rfc2822(now)
    _history(msg, status, now)
    callback = msg.get("_callback")
    if not callback:
        return
    params: dict[str, str] = {
        "AccountSid": msg["account_sid"], "ApiVersion": API_VERSION, "From": msg["from"] or "",
        "MessageSid": msg["sid"], "MessageStatus": status, "SmsSid": msg["sid"], "SmsStatus": status,
        "To": msg["to"],
    }
    if msg["messaging_service_sid"]:
        params["MessagingServiceSid"] = msg["messaging_service_sid"]
    if msg["error_code"] is not None and status in ("failed", "undelivered"):
        params["ErrorCode"] = str(msg["error_code"])
    if status == "delivered":
        params["RawDlrDoneDate"] = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%y%m%d%H%M")
    target = Target("twilio", msg["sid"], callback, sb.settings.twilio_auth_token)
    try:
        sb.deliverer.submit(target, f"{msg['sid']}:{status}", f"message.{status}", params)
    except RuntimeError:  # no running loop: nothing can be posted from here
        log.warning("SANDBOX twilio: no event loop to post the %s callback for %s", status, msg["sid"])
