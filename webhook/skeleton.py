"""One skeleton for every inbound webhook route: Stripe, Resend, and any provider after them.

A route reads like a paragraph: refuse a declared oversized body, the provider's early check
(a missing signature header), the raw body with a size and time bound, the signing secrets
(from the cache without a thread when fresh), the provider's signature check (retried once
against freshly loaded secrets, so a secret the owner just saved works at once), the
provider's event reader, then one thread-pool hop that makes the provider's one SQL call
(`webhook/database.py`: retried once after a dropped connection), the answer, and exactly one
JSON log line, never with the body. A provider adds only what is its own: subclass
`WebhookProvider` with its secrets cache, its signature check, its reader and its apply call,
and mount `provider.route()`.

The same fault gets the same answer on every route:
- no signing secret configured: 503, not 400. The delivery is not at fault, the deployment
  is; 5xx is what every provider retries and flags as failing (Stripe for up to 3 days,
  Resend about a day), so events sent while the owner is still setting up are applied once
  the secret is saved, and 5xx alone means "could not record it now, retry" (DESIGN,
  invariant 11) whereas a 400 says "this delivery is bad" when it is not;
- the signature does not verify, the timestamp is outside the tolerance, the body is not
  an event: 400, nothing written;
- the database is unreachable or the pool exhausted, or the stored secrets cannot be
  decrypted with CRM_SECRET_KEY: 503, so the provider retries;
- Postgres refuses a value in a verified event: 400 (a retry would never succeed);
- a bug: 500, logged with its frames but not its message.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from webhook.database import (
    Conn,
    DatabaseUnavailable,
    EventDataRejected,
    SecretsUndecryptable,
    apply_in_database,
    load_secrets,
)
from webhook.request_input import Answer, read_body, refuse_declared_oversize
from webhook.signing_secrets import SecretsCache

S = TypeVar("S")  # the provider's secrets (falsy when none is configured)
V = TypeVar("V")  # what a verified signature tells (Stripe: the mode)
E = TypeVar("E")  # the verified event, ready for the apply call

SIGNATURE_TOLERANCE_S = 300  # Stripe's and Svix's default: five minutes either way

# After a failed verification, secrets older than this are reloaded once: a secret the
# owner just saved (rotation) works at once rather than after the cache lifetime.
RELOAD_AFTER_S = 5.0

UNAVAILABLE_REASON = "database unavailable, retry later"
UNDECRYPTABLE_REASON = "stored secrets cannot be decrypted with CRM_SECRET_KEY, retry later"

Fields = dict[str, Any]


class SignatureRejected(Exception):
    """The delivery does not verify; `reason` is short and safe to return and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refuse_out_of_tolerance(stamp: int, tolerance_s: int = SIGNATURE_TOLERANCE_S) -> None:
    """The one timestamp rule: a signed timestamp more than the tolerance away from now, in
    either direction, is refused (a replay, or a clock that cannot be trusted)."""
    offset = stamp - time.time()
    if offset < -tolerance_s:
        raise SignatureRejected(f"timestamp older than {tolerance_s} s")
    if offset > tolerance_s:
        raise SignatureRejected(f"timestamp more than {tolerance_s} s in the future")


class WebhookProvider(Generic[S, V, E]):
    """What one provider adds to the skeleton. `name` is the path (/webhooks/<name>) and the
    log line's `route`; `missing_secret` names the setting that holds its secret."""

    name: str
    missing_secret: str
    secrets: SecretsCache[S]

    def __init__(self) -> None:
        self.log = logging.getLogger(f"webhook.{self.name}")

    def log_fields(self, request: Request) -> Fields:
        """The fields of the log line known before the body is read (ids start as None)."""
        return {"event_id": None, "type": None}

    def precheck(self, request: Request) -> None:
        """Refuse before reading the body (e.g. no signature header); raise Answer."""

    def check_signature(self, raw: bytes, request: Request, secrets: S) -> V:
        """Raise SignatureRejected unless one of `secrets` signed `raw`."""
        raise NotImplementedError

    def read_event(self, raw: bytes, verified: V, request: Request, fields: Fields) -> E:
        """The verified body as the event to apply, or Answer(400); fill in `fields`."""
        raise NotImplementedError

    def apply(self, conn: Conn, event: E, fields: Fields) -> Fields:
        """The one SQL call (autocommit connection); returns the 200 answer's body."""
        raise NotImplementedError

    def respond(self, status: int, body: Fields, headers: dict[str, str]) -> Response:
        return JSONResponse(body, status_code=status, headers=headers)

    def route(self) -> Route:
        return Route(f"/webhooks/{self.name}", self.endpoint, methods=["POST"])

    async def endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        fields: Fields = {"route": self.name, **self.log_fields(request)}
        headers: dict[str, str] = {}
        try:
            status, body = await self._handle(request, fields)
        except Answer as answer:
            status, body = answer.status, {"outcome": answer.outcome, "error": answer.reason}
            headers = {"Connection": "close"} if answer.close else {}
        except Exception as exc:  # noqa: BLE001 - a bug: still one line, the frames but not the message
            status, body = 500, {"outcome": "error", "error": "internal error"}
            fields.update(error_type=type(exc).__name__, frames=traceback.format_tb(exc.__traceback__)[-3:])
        fields.update(status=status, outcome=body["outcome"], detail=body.get("error") or body.get("detail"),
                      duration_ms=round((time.perf_counter() - started) * 1000, 1))
        self.log.log(logging.WARNING if status >= 500 else logging.INFO, f"{self.name} webhook",
                     extra={"fields": fields})
        return self.respond(status, body, headers)

    async def _handle(self, request: Request, fields: Fields) -> tuple[int, Fields]:
        refuse_declared_oversize(request)
        self.precheck(request)
        raw = await read_body(request)
        verified = await self._verify(raw, request)
        event = self.read_event(raw, verified, request, fields)
        try:
            body = await run_in_threadpool(apply_in_database, self.apply, event, fields)
        except DatabaseUnavailable as exc:
            raise Answer(503, "error", UNAVAILABLE_REASON) from exc
        except EventDataRejected as exc:
            raise Answer(400, "rejected", exc.reason) from None
        return 200, body

    async def _verify(self, raw: bytes, request: Request) -> V:
        # A cache hit needs no thread: one thread-pool hop per event (the apply), not two.
        secrets = self.secrets.fresh()
        if secrets is None:
            secrets = await self._load(None)
        if not secrets:
            raise Answer(503, "error", f"no signing secret configured ({self.missing_secret})")
        try:
            return self.check_signature(raw, request, secrets)
        except SignatureRejected as first:
            try:
                fresher = await self._load(RELOAD_AFTER_S)
            except Answer:
                fresher = secrets
            if fresher is secrets or not fresher:
                raise Answer(400, "rejected", first.reason) from first
            try:
                return self.check_signature(raw, request, fresher)
            except SignatureRejected as second:
                raise Answer(400, "rejected", second.reason) from second

    async def _load(self, max_age_s: float | None) -> S:
        try:
            return await run_in_threadpool(load_secrets, self.secrets, max_age_s)
        except DatabaseUnavailable as exc:
            raise Answer(503, "error", UNAVAILABLE_REASON) from exc
        except SecretsUndecryptable as exc:
            raise Answer(503, "error", UNDECRYPTABLE_REASON) from exc
