"""POST /webhooks/twilio: Twilio's message status callbacks on the webhook skeleton
(webhook/skeleton.py), which does the size check, the bounded body, the one SQL call, the
answer and the one log line. This module adds Twilio's own part.

Twilio signs the full URL it called plus the POST parameters (sorted by name) with the
account's auth token; twilio's own `RequestValidator` checks it. The URL must be the public
one Twilio called: behind a proxy or a load balancer the request this process sees has
another scheme, host or port, so the URL verified is the `twilio.status_callback_url` setting
(the same URL the CRM gives Twilio as StatusCallback), and this request's own URL only when
that setting is empty (no proxy). A missing, malformed or mismatched signature is 400 and
writes nothing. A verified callback is recorded once per (MessageSid, MessageStatus) by
crm.apply_twilio_callback and acknowledged with 200 (applied, duplicate or unmatched).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from crm.texts.errors import sentence
from db.texts import apply_callback
from webhook.database import Conn
from webhook.request_input import Answer, storable_problem
from webhook.signing_secrets import SecretsCache, db_timeout_s
from webhook.skeleton import Fields, SignatureRejected, WebhookProvider

__all__ = ["TWILIO", "VERIFIER", "routes"]

_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/=]{20,100}")
_ERROR_CODE = re.compile(r"[0-9]{1,6}")
STATUSES = {"queued", "sending", "sent", "failed", "delivered", "undelivered", "receiving", "received", "accepted",
            "scheduled", "read", "partially_delivered", "canceled"}


@dataclass(frozen=True)
class TwilioVerifier:
    account_sid: str
    auth_token: str
    public_url: str  # '' when unset: the request's own URL is verified

    def __bool__(self) -> bool:
        return bool(self.auth_token)


def _load() -> TwilioVerifier:
    from crm.config.settings import load_settings
    from crm.texts.gateway import twilio_target
    from db.pool import get_pool

    with get_pool().connection(timeout=db_timeout_s()) as conn:
        settings = load_settings(conn)
    target = twilio_target(settings)
    return TwilioVerifier(target.account_sid, target.auth_token, str(settings["twilio.status_callback_url"]))


VERIFIER: SecretsCache[TwilioVerifier] = SecretsCache(_load)


class Verified(NamedTuple):
    params: dict[str, str]
    account_sid: str


class TwilioCallback(NamedTuple):
    sid: str
    status: str
    error_code: int | None
    detail: str | None
    payload: dict[str, str]


def _form(raw: bytes) -> list[tuple[str, str]]:
    try:
        text = raw.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise SignatureRejected("body is not a form-encoded Twilio callback") from None


class TwilioWebhook(WebhookProvider[TwilioVerifier, Verified, TwilioCallback]):
    """Twilio's part: X-Twilio-Signature over the public URL, the status callback,
    `crm.apply_twilio_callback`."""

    name = "twilio"
    missing_secret = "Settings -> Text messages, TWILIO_AUTH_TOKEN"
    secrets = VERIFIER

    def log_fields(self, request: Request) -> Fields:
        return {"event_id": None, "type": None}

    def precheck(self, request: Request) -> None:
        signature = request.headers.get("x-twilio-signature", "")
        if not signature:
            raise Answer(400, "rejected", "missing X-Twilio-Signature header")
        if not _SIGNATURE.fullmatch(signature):
            raise Answer(400, "rejected", "malformed X-Twilio-Signature header")

    def check_signature(self, raw: bytes, request: Request, secrets: TwilioVerifier) -> Verified:
        pairs = _form(raw)
        params = dict(pairs)
        url = secrets.public_url or str(request.url)
        signature = request.headers["x-twilio-signature"]
        if len(params) != len(pairs) or not RequestValidator(secrets.auth_token).validate(url, params, signature):
            raise SignatureRejected("signature does not match")
        return Verified(params, secrets.account_sid)

    def read_event(self, raw: bytes, verified: Verified, request: Request, fields: Fields) -> TwilioCallback:
        params = verified.params
        sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
        if not _SID.fullmatch(sid) or status not in STATUSES:
            raise Answer(400, "rejected", "not a Twilio message status callback (MessageSid, MessageStatus)")
        if params.get("AccountSid") != verified.account_sid:
            raise Answer(400, "rejected", "callback for another Twilio account")
        raw_code = params.get("ErrorCode", "")
        if raw_code and not _ERROR_CODE.fullmatch(raw_code):
            raise Answer(400, "rejected", "malformed ErrorCode")
        problem = storable_problem(params)
        if problem:
            raise Answer(400, "rejected", problem)
        fields.update(event_id=sid, type=status)
        code = int(raw_code) if raw_code else None
        return TwilioCallback(sid, status, code, sentence(code), params)

    def apply(self, conn: Conn, event: TwilioCallback, fields: Fields) -> Fields:
        outcome = apply_callback(conn, *event)
        return {"outcome": outcome, "sid": event.sid}


TWILIO = TwilioWebhook()


def routes() -> list[Route]:
    return [TWILIO.route()]
