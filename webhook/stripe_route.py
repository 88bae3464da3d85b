"""POST /webhooks/stripe: size check, raw body, verify, one SQL call, answer.

Every verified event is acknowledged with 200 once it is committed (applied, duplicate,
ignored, unmatched, or rejected for a mode mismatch); a delivery that does not verify
gets 400 and touches nothing, whatever its bytes; so does a verified event whose JSON
cannot be stored (too deep, U+0000, a value Postgres refuses): retrying it would never
succeed. 413 for bodies over 256 KiB, 408 for a body that does not arrive in time; 503
while the database is unreachable or the stored signing secrets cannot be decrypted
with CRM_SECRET_KEY, so Stripe retries, and while no signing secret is configured (why
503: webhook/skeleton.py). Exactly one JSON log line per request, never the body. The
skeleton (webhook/skeleton.py) does all of that; this module adds Stripe's own part.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from crm.stripe.event_rules import event_problem, mode_of
from db.stripe_events import apply_event
from webhook.database import Conn
from webhook.request_input import Answer, parse_json
from webhook.signing_secrets import SECRETS, SigningSecrets
from webhook.skeleton import Fields, WebhookProvider
from webhook.verify import verified_mode


class StripeWebhook(WebhookProvider[SigningSecrets, str, tuple[dict[str, Any], str]]):
    """Stripe's part: the Stripe-Signature check (the verifying secret's mode is the
    request's mode), the event's shape and mode, `crm.apply_stripe_event`."""

    name = "stripe"
    missing_secret = "Settings -> Integrations, STRIPE_WEBHOOK_SECRET"
    secrets = SECRETS

    def log_fields(self, request: Request) -> Fields:
        return {"event_id": None, "type": None, "mode": None}

    def precheck(self, request: Request) -> None:
        if not request.headers.get("stripe-signature"):
            raise Answer(400, "rejected", "missing Stripe-Signature header")

    def check_signature(self, raw: bytes, request: Request, secrets: SigningSecrets) -> str:
        return verified_mode(raw, request.headers.get("stripe-signature"), secrets)

    def read_event(self, raw: bytes, mode: str, request: Request, fields: Fields) -> tuple[dict[str, Any], str]:
        fields.update(mode=mode)
        try:
            event = parse_json(raw)
        except Answer:
            fields.update(event_id=_event_id_of(raw))
            raise
        if isinstance(event, dict):
            fields.update(event_id=_safe_label(event.get("id")), type=_safe_label(event.get("type")))
        problem = event_problem(event)
        if problem:
            raise Answer(400, "rejected", problem)
        if mode_of(event["livemode"]) != mode:
            raise Answer(400, "rejected", f"livemode does not match the {mode}-mode secret that verified it")
        return dict(event), mode

    def apply(self, conn: Conn, verified: tuple[dict[str, Any], str], fields: Fields) -> Fields:
        event, mode = verified
        result = apply_event(conn, event, mode)
        fields.update(invoice_id=result.invoice_id, job_completed=result.job_completed,
                      resend_cancels_queued=len(result.resend_ids_to_cancel))
        return {"outcome": result.outcome, "event_id": event["id"], "detail": result.detail}


STRIPE = StripeWebhook()


def _safe_label(value: object) -> str | None:
    """An id or type for the log line: a short evt_-style token, or nothing."""
    if isinstance(value, str) and value.isascii() and value.isprintable():
        return value[:100]
    return None


def _event_id_of(raw: bytes) -> str | None:
    """The event id of a body that does not parse (too deep, U+0000...), when one is visible."""
    match = re.search(rb'"id"\s*:\s*"(evt_[A-Za-z0-9_]{1,100})"', raw[:4096])
    return match.group(1).decode() if match else None
