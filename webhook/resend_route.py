"""POST /webhooks/resend: size check, raw body, Svix verify, one SQL call, answer.

A delivery that does not verify (bad or missing signature, timestamp more than 5 minutes
in the past or the future, headers of any bytes) gets 400 and touches nothing; so does a
verified event whose JSON cannot be stored (too deep, U+0000, a value Postgres refuses);
413 over 256 KiB, 408 for a body that does not arrive in time; 503 while the database is
unreachable or the stored webhook secret cannot be decrypted with CRM_SECRET_KEY, so
Resend retries, and while no webhook secret is configured (why 503: webhook/skeleton.py).
A verified event is acknowledged with 200 once committed (applied, duplicate, or
unmatched). Exactly one JSON log line per request, without the body. The skeleton
(webhook/skeleton.py) does all of that, retries after a dropped connection included; this
module adds Resend's own part.

Signatures are checked by the official `svix` package (svix.webhooks.Webhook), which
reads the wall clock and allows 5 minutes either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.routing import Route
from svix.webhooks import Webhook, WebhookVerificationError

from db.email_events import apply_resend_event
from webhook.database import Conn
from webhook.request_input import Answer, parse_json
from webhook.signing_secrets import SecretsCache, db_timeout_s
from webhook.skeleton import (
    SIGNATURE_TOLERANCE_S,
    Fields,
    SignatureRejected,
    WebhookProvider,
    refuse_out_of_tolerance,
)

__all__ = ["RESEND", "SECRETS", "SignatureRejected", "resend_webhook", "routes", "verify_svix"]

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SVIX_ID = re.compile(r"[\x21-\x7e]{1,255}")


def _signatures(header: str) -> str:
    """The space-separated `v1,<base64>` list with anything svix would choke on removed."""
    kept = []
    for part in header.split():
        version, sep, sig = part.partition(",")
        if sep and "," not in sig and sig.isascii() and re.fullmatch(r"[A-Za-z0-9+/=]{1,200}", sig):
            kept.append(f"{version},{sig}")
    return " ".join(kept)


def verify_svix(body: bytes, headers: Mapping[str, str], secrets: list[str]) -> None:
    """Svix's scheme, checked by svix: HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the
    base64 part of whsec_...; any of the space-separated v1 signatures may match; the
    timestamp within 5 minutes of now. Raises SignatureRejected with a reason safe to log.

    The headers are checked first so that no value (non-ASCII, '²', 5,000 digits, a
    signature without its comma) reaches svix's parser as anything but a refusal.
    """
    msg_id, stamp, header = (headers.get(h, "") for h in ("svix-id", "svix-timestamp", "svix-signature"))
    if not (msg_id and stamp and header):
        raise SignatureRejected("missing svix-id, svix-timestamp or svix-signature header")
    if not _SVIX_ID.fullmatch(msg_id):
        raise SignatureRejected("malformed svix-id")
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureRejected("malformed svix-timestamp")
    offered = _signatures(header)
    if not offered:
        raise SignatureRejected("malformed svix-signature")
    refuse_out_of_tolerance(int(stamp))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureRejected("body is not UTF-8") from exc
    clean = {"svix-id": msg_id, "svix-timestamp": stamp, "svix-signature": offered}
    for secret in secrets:
        try:
            hook = Webhook(secret)
        except Exception:  # noqa: BLE001 - a misconfigured secret verifies nothing
            continue
        try:
            hook.verify(body, clean)
            return
        except WebhookVerificationError as exc:
            if "too old" in str(exc) or "too new" in str(exc):  # the clock moved between checks
                raise SignatureRejected(f"timestamp more than {SIGNATURE_TOLERANCE_S} s away") from exc
        except Exception:  # noqa: BLE001 - svix's parser refusing input is a mismatch
            continue
    raise SignatureRejected("signature does not match")


def _load_secrets() -> tuple[str, ...]:
    """The webhook secret from settings (env RESEND_WEBHOOK_SECRET wins), comma-separated
    during a rotation."""
    from crm.config.settings import load_settings
    from db.pool import get_pool

    with get_pool().connection(timeout=db_timeout_s()) as conn:
        raw = str(load_settings(conn)["resend.webhook_secret"])
    return tuple(s.strip() for s in raw.split(",") if s.strip())


SECRETS: SecretsCache[tuple[str, ...]] = SecretsCache(_load_secrets)


class ResendEvent(NamedTuple):
    svix_id: str
    event_type: str
    resend_id: str | None
    occurred_at: datetime
    payload: dict[str, Any]


class ResendWebhook(WebhookProvider[tuple[str, ...], None, ResendEvent]):
    """Resend's part: the Svix signature check, the email event, `crm.apply_resend_event`."""

    name = "resend"
    missing_secret = "Settings -> Integrations, RESEND_WEBHOOK_SECRET"
    secrets = SECRETS

    def log_fields(self, request: Request) -> Fields:
        svix_id = request.headers.get("svix-id", "")
        return {"event_id": svix_id[:100] if _SVIX_ID.fullmatch(svix_id) else None, "type": None,
                "resend_id": None}

    def precheck(self, request: Request) -> None:
        if not all(request.headers.get(h) for h in ("svix-id", "svix-timestamp", "svix-signature")):
            raise Answer(400, "rejected", "missing svix-id, svix-timestamp or svix-signature header")

    def check_signature(self, raw: bytes, request: Request, secrets: tuple[str, ...]) -> None:
        verify_svix(raw, request.headers, list(secrets))

    def read_event(self, raw: bytes, verified: None, request: Request, fields: Fields) -> ResendEvent:
        event = _parse(raw, request.headers["svix-id"], request.headers["svix-timestamp"])
        fields.update(type=event.event_type, resend_id=event.resend_id)
        return event

    def apply(self, conn: Conn, event: ResendEvent, fields: Fields) -> Fields:
        outcome = apply_resend_event(conn, *event)
        return {"outcome": outcome, "svix_id": event.svix_id}


def _parse(raw: bytes, svix_id: str, stamp: str) -> ResendEvent:
    payload = parse_json(raw)
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) \
            or not payload["type"].startswith("email."):
        raise Answer(400, "rejected", "not a Resend email event")
    data = payload["data"] if isinstance(payload.get("data"), dict) else {}
    email_id = data.get("email_id")
    resend_id = email_id[:255] if isinstance(email_id, str) else None
    try:
        occurred_at = datetime.fromisoformat(str(payload.get("created_at")).replace("Z", "+00:00"))
        if occurred_at.tzinfo is None:
            occurred_at = occurred_at.replace(tzinfo=UTC)
        occurred_at.astimezone(UTC)  # an offset that moves it out of datetime's range
    except (ValueError, OverflowError):
        occurred_at = datetime.fromtimestamp(int(stamp), UTC)
    return ResendEvent(svix_id, payload["type"][:100], resend_id, occurred_at, payload)


RESEND = ResendWebhook()
resend_webhook = RESEND.endpoint


def routes() -> list[Route]:
    return [RESEND.route()]
