"""Every call to Stripe goes through here: target, API version, retries, idempotency, errors.

Which Stripe: no secret key for the current mode means the local sandbox (with a
placeholder test key); with a key, STRIPE_API_BASE when set (tests), else Stripe itself.
Writes carry the caller's deterministic idempotency key. Network errors, 409 lock
timeouts, 429 and 5xx are retried by the library and then by our own bounded loop with
the same key; anything else is Stripe refusing the request and is not retried.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from stripe import (
    APIConnectionError,
    RequestsClient,
    StripeClient,
    StripeError,
)

from crm.settings import Settings, sandbox_url
from db.config import env_int

T = TypeVar("T")
log = logging.getLogger("crm.stripe")

STRIPE_API_VERSION = "2026-10-28.endive"
SANDBOX_SECRET_KEY = "sk_test_sandbox"
DEFAULT_API_BASE = "https://api.stripe.com"


class StripeGatewayError(RuntimeError):
    """Stripe refused (retryable False) or could not be reached after retries (True)."""

    def __init__(self, message: str, retryable: bool, code: str | None = None,
                 http_status: int | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.http_status = http_status
        self.param = param  # which request parameter Stripe objected to, when it says


@dataclass(frozen=True)
class StripeTarget:
    api_key: str
    api_base: str
    mode: str  # 'test' | 'live'
    sandboxed: bool

    def describe(self) -> str:
        return f"the SANDBOX at {self.api_base}" if self.sandboxed else f"Stripe ({self.mode} mode)"


def stripe_target(settings: Settings) -> StripeTarget:
    mode = settings.stripe_mode
    if settings.stripe_sandboxed:
        return StripeTarget(SANDBOX_SECRET_KEY, sandbox_url(), mode, sandboxed=True)
    base = os.environ.get("STRIPE_API_BASE", "").strip().rstrip("/") or DEFAULT_API_BASE
    return StripeTarget(settings.stripe_secret_key(mode), base, mode, sandboxed=False)


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _retryable(exc: StripeError) -> bool:
    if isinstance(exc, APIConnectionError):
        return True
    status = exc.http_status
    if status is None:
        return True
    return status == 429 or status >= 500 or (status == 409 and exc.code == "lock_timeout")


def _message(exc: StripeError) -> str:
    err = getattr(exc, "error", None)
    text = getattr(err, "message", None) or exc.user_message or str(exc)
    return str(text)


class StripeGateway:
    def __init__(self, target: StripeTarget, *, attempts: int | None = None, backoff_s: float | None = None,
                 network_retries: int | None = None, timeout_s: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = target
        self.attempts = attempts if attempts is not None else env_int("STRIPE_RETRY_ATTEMPTS", 3)
        self.backoff_s = backoff_s if backoff_s is not None else _float_env("STRIPE_RETRY_BACKOFF_S", 1.0)
        self._sleep = sleep
        self.client = StripeClient(
            target.api_key,
            base_addresses={"api": target.api_base},
            stripe_version=STRIPE_API_VERSION,
            max_network_retries=network_retries if network_retries is not None
            else env_int("STRIPE_MAX_NETWORK_RETRIES", 2),
            http_client=RequestsClient(timeout=timeout_s or _float_env("STRIPE_TIMEOUT_S", 30.0)),
        )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except StripeError as exc:
                retry = _retryable(exc)
                # A 404 is an answer (the caller decides what it means), not a fault worth a warning.
                log.log(logging.INFO if exc.http_status == 404 else logging.WARNING,
                        "stripe %s failed (attempt %d/%d, status %s, retryable %s): %s", what, attempt,
                        self.attempts, exc.http_status, retry, _message(exc))
                if not retry or attempt == self.attempts:
                    raise StripeGatewayError(_message(exc), retryable=retry, code=exc.code,
                                             http_status=exc.http_status,
                                             param=getattr(exc, "param", None)) from exc
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def create_customer(self, name: str, email: str, metadata: dict[str, str], idempotency_key: str) -> str:
        cus = self._call("create customer", lambda: self.client.v1.customers.create(
            {"name": name, "email": email, "metadata": metadata}, {"idempotency_key": idempotency_key}))
        return str(cus.id)

    def create_invoice(self, params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        inv = self._call("create invoice", lambda: self.client.v1.invoices.create(
            params, {"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        return inv.to_dict()

    def add_lines(self, invoice_id: str, lines: list[dict[str, Any]], idempotency_key: str) -> dict[str, Any]:
        inv = self._call("add lines", lambda: self.client.v1.invoices.add_lines(
            invoice_id, {"lines": lines}, {"idempotency_key": idempotency_key}))  # type: ignore[typeddict-item]
        return inv.to_dict()

    def finalize(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        inv = self._call("finalize invoice", lambda: self.client.v1.invoices.finalize_invoice(
            invoice_id, {"auto_advance": False}, {"idempotency_key": idempotency_key}))
        return inv.to_dict()

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self._call("retrieve invoice", lambda: self.client.v1.invoices.retrieve(invoice_id)).to_dict()

    def delete_draft(self, invoice_id: str) -> None:
        self._call("delete draft invoice", lambda: self.client.v1.invoices.delete(invoice_id))

    def void(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        inv = self._call("void invoice", lambda: self.client.v1.invoices.void_invoice(
            invoice_id, None, {"idempotency_key": idempotency_key}))
        return inv.to_dict()

    def list_events(self, created_gte: int, types: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Events since `created_gte` (unix), newest first, across all pages (Stripe keeps 30 days)."""
        params: dict[str, Any] = {"created": {"gte": created_gte}, "limit": 100}
        if types:
            params["types"] = types
        page = self._call("list events", lambda: self.client.v1.events.list(params))  # type: ignore[arg-type]
        for event in page.auto_paging_iter():
            yield event.to_dict()

    def register_webhook_endpoint(self, url: str, events: list[str]) -> tuple[str, str]:
        """Create an endpoint; returns (we_... id, whsec_ signing secret, shown only now)."""
        ep = self._call("create webhook endpoint", lambda: self.client.v1.webhook_endpoints.create(
            {"url": url, "enabled_events": events, "api_version": STRIPE_API_VERSION}))  # type: ignore[typeddict-item]
        return str(ep.id), str(ep.secret)

    def webhook_endpoint_urls(self) -> dict[str, str]:
        """url -> endpoint id of the endpoints registered for this key."""
        page = self._call("list webhook endpoints", lambda: self.client.v1.webhook_endpoints.list({"limit": 100}))
        return {str(ep.url): str(ep.id) for ep in page.auto_paging_iter()}

    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        self._call("delete webhook endpoint", lambda: self.client.v1.webhook_endpoints.delete(endpoint_id))
