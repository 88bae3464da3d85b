"""Every call to Stripe goes through here: target, API version, retries, idempotency, errors.

Which Stripe: no secret key for the current mode means the local sandbox (with a
placeholder test key); with a key, STRIPE_API_BASE when set (tests), else Stripe itself.
Writes carry the caller's deterministic idempotency key. Network errors, 409 conflicts
(a lock timeout, or another request running with the same idempotency key), 429 and 5xx
are retried by the library and then by our own bounded loop with the same key; anything
else is Stripe refusing the request and is not retried. `call_budget_s` is the longest one
call can take that way: the Send's lease is computed from it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from stripe import (
    APIConnectionError,
    IdempotencyError,
    RequestsClient,
    StripeClient,
    StripeError,
)

from crm.config.settings import Settings, sandbox_url
from db.config import env_float, env_int

T = TypeVar("T")
log = logging.getLogger("crm.stripe")

STRIPE_API_VERSION = "2026-10-28.endive"
SANDBOX_SECRET_KEY = "sk_test_sandbox"
# The sandbox's live mode: its own objects, events and endpoints, as a live key sees at Stripe.
SANDBOX_SECRET_KEYS = {"test": SANDBOX_SECRET_KEY, "live": "sk_live_sandbox"}
DEFAULT_API_BASE = "https://api.stripe.com"


# The library's own retry sleeps are at most this long (stripe-python's HTTPClient.MAX_DELAY).
_LIBRARY_MAX_RETRY_SLEEP_S = 5.0


class StripeGatewayError(RuntimeError):
    """Stripe refused (retryable False) or could not be reached after retries (True).

    `in_progress_elsewhere`: Stripe answered 409 because another request with the same
    idempotency key is still running (another Send attempt of this invoice): not a refusal;
    that attempt finishes the step, and a later Send resumes from what it stored.
    """

    def __init__(self, message: str, retryable: bool, code: str | None = None,
                 http_status: int | None = None, param: str | None = None,
                 in_progress_elsewhere: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.http_status = http_status
        self.param = param  # which request parameter Stripe objected to, when it says
        self.in_progress_elsewhere = in_progress_elsewhere


@dataclass(frozen=True)
class StripeTarget:
    api_key: str
    api_base: str
    mode: str  # 'test' | 'live'
    sandboxed: bool

    def describe(self) -> str:
        return f"the SANDBOX at {self.api_base}" if self.sandboxed else f"Stripe ({self.mode} mode)"

    @property
    def emulated(self) -> bool:
        """The sandbox, or another Stripe-compatible emulator set by STRIPE_API_BASE (tests): not Stripe."""
        return self.sandboxed or self.api_base.rstrip("/") != DEFAULT_API_BASE


def stripe_target(settings: Settings, mode: str | None = None) -> StripeTarget:
    """Where calls for `mode` (default: the configured mode) go: no key for it means the sandbox."""
    mode = mode or settings.stripe_mode
    if not settings.stripe_secret_key(mode):
        return StripeTarget(SANDBOX_SECRET_KEYS[mode], sandbox_url(), mode, sandboxed=True)
    base = os.environ.get("STRIPE_API_BASE", "").strip().rstrip("/") or DEFAULT_API_BASE
    return StripeTarget(settings.stripe_secret_key(mode), base, mode, sandboxed=False)


def _retryable(exc: StripeError) -> bool:
    if isinstance(exc, APIConnectionError):
        return True
    status = exc.http_status
    if status is None:
        return True
    # 409 is a conflict, never a refusal: a lock timeout, or a concurrent request with the
    # same idempotency key (which Stripe answers with the first request's result once it ends).
    return status in (409, 429) or status >= 500


def _concurrent_idempotent_request(exc: StripeError) -> bool:
    """Stripe's 409 for an idempotency key that another request is using right now."""
    if exc.http_status != 409 or exc.code == "lock_timeout":
        return False
    err = getattr(exc, "error", None)
    return isinstance(exc, IdempotencyError) or getattr(err, "type", None) == "idempotency_error" \
        or exc.code == "idempotency_key_in_use"


def call_budget_s(attempts: int, network_retries: int, timeout_s: float, backoff_s: float) -> float:
    """The longest one gateway call can take: every try timing out, with every sleep between."""
    library_tries = network_retries + 1
    per_attempt = library_tries * timeout_s + network_retries * _LIBRARY_MAX_RETRY_SLEEP_S
    sleeps = sum(backoff_s * 2 ** (n - 1) for n in range(1, attempts))
    # Up to `attempts` waits of one timeout each for a request still in progress (409), each
    # followed by one more try.
    conflict_waits = attempts * (max(backoff_s, timeout_s) + per_attempt)
    return attempts * per_attempt + sleeps + conflict_waits


def configured_call_budget_s() -> float:
    """`call_budget_s` of a gateway built from the environment (what a Send uses)."""
    return call_budget_s(env_int("STRIPE_RETRY_ATTEMPTS", 3), env_int("STRIPE_MAX_NETWORK_RETRIES", 2),
                         env_float("STRIPE_TIMEOUT_S", 30.0), env_float("STRIPE_RETRY_BACKOFF_S", 1.0))


def as_json_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A retrieved object as the API sent it: stripe-python turns the API's `*_decimal` strings
    into Decimal, which neither jsonb nor the SQL functions expect."""
    def text(value: Any) -> str:
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(f"{type(value).__name__} is not JSON")
    plain: dict[str, Any] = json.loads(json.dumps(obj, default=text))
    return plain


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
        self.backoff_s = backoff_s if backoff_s is not None else env_float("STRIPE_RETRY_BACKOFF_S", 1.0)
        self.network_retries = network_retries if network_retries is not None \
            else env_int("STRIPE_MAX_NETWORK_RETRIES", 2)
        self.timeout_s = timeout_s or env_float("STRIPE_TIMEOUT_S", 30.0)
        self._sleep = sleep
        # Called before every try (the Send renews its lease there, and stops if it lost it).
        self.before_call: Callable[[], None] | None = None
        self.client = StripeClient(
            target.api_key,
            base_addresses={"api": target.api_base},
            stripe_version=STRIPE_API_VERSION,
            max_network_retries=self.network_retries,
            http_client=RequestsClient(timeout=self.timeout_s),
        )

    def call_budget_s(self) -> float:
        """The longest one call through this gateway can take, retries included."""
        return call_budget_s(self.attempts, self.network_retries, self.timeout_s, self.backoff_s)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        attempt, conflicts = 1, 0
        while True:
            if self.before_call is not None:
                self.before_call()
            try:
                return fn()
            except StripeError as exc:
                retry = _retryable(exc)
                concurrent = _concurrent_idempotent_request(exc)
                # A 404 is an answer (the caller decides what it means), not a fault worth a warning.
                log.log(logging.INFO if exc.http_status == 404 else logging.WARNING,
                        "stripe %s failed (attempt %d/%d, status %s, retryable %s): %s", what, attempt,
                        self.attempts, exc.http_status, retry, _message(exc))
                if concurrent and conflicts < self.attempts:
                    # The same key is still being processed at Stripe: our own earlier try that
                    # timed out (it may run about as long as the timeout again), or another
                    # attempt's. Wait for it, without using up an attempt: Stripe then replays
                    # its answer to us.
                    conflicts += 1
                    self._sleep(max(self.backoff_s, self.timeout_s))
                    continue
                if not retry or attempt >= self.attempts:
                    raise StripeGatewayError(_message(exc), retryable=retry, code=exc.code,
                                             http_status=exc.http_status,
                                             param=getattr(exc, "param", None),
                                             in_progress_elsewhere=concurrent) from exc
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
                attempt += 1

    def create_customer(self, name: str, email: str, metadata: dict[str, str], idempotency_key: str) -> str:
        cus = self._call("create customer", lambda: self.client.v1.customers.create(
            {"name": name, "email": email, "metadata": metadata}, {"idempotency_key": idempotency_key}))
        return str(cus.id)

    def update_customer(self, customer_id: str, name: str, email: str, idempotency_key: str) -> None:
        self._call("update customer", lambda: self.client.v1.customers.update(
            customer_id, {"name": name, "email": email}, {"idempotency_key": idempotency_key}))

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

    def retrieve_invoice_with_payments(self, invoice_id: str) -> dict[str, Any]:
        """The invoice with its InvoicePayments (the `payments` list is includable only)."""
        return self._call("retrieve invoice", lambda: self.client.v1.invoices.retrieve(
            invoice_id, {"expand": ["payments"]})).to_dict()

    def list_invoice_payments(self, invoice_id: str) -> list[dict[str, Any]]:
        """Every InvoicePayment of an invoice (paid, open or canceled): its payment intents."""
        page = self._call("list invoice payments", lambda: self.client.v1.invoice_payments.list(
            {"invoice": invoice_id, "limit": 100}))
        return [p.to_dict() for p in page.auto_paging_iter()]

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        return self._call("retrieve payment intent",
                          lambda: self.client.v1.payment_intents.retrieve(payment_intent_id)).to_dict()

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return self._call("retrieve charge", lambda: self.client.v1.charges.retrieve(charge_id)).to_dict()

    def retrieve_refund(self, refund_id: str) -> dict[str, Any]:
        return self._call("retrieve refund", lambda: self.client.v1.refunds.retrieve(refund_id)).to_dict()

    def list_refunds(self, charge_id: str) -> list[dict[str, Any]]:
        page = self._call("list refunds", lambda: self.client.v1.refunds.list({"charge": charge_id, "limit": 100}))
        return [r.to_dict() for r in page.auto_paging_iter()]

    def list_disputes(self, *, charge_id: str | None = None,
                      payment_intent_id: str | None = None) -> list[dict[str, Any]]:
        """A charge's disputes (by its payment intent when the charge is not known yet)."""
        params: dict[str, Any] = {"limit": 100}
        if charge_id:
            params["charge"] = charge_id
        elif payment_intent_id:
            params["payment_intent"] = payment_intent_id
        else:
            raise ValueError("a charge or a payment intent is needed")
        page = self._call("list disputes", lambda: self.client.v1.disputes.list(params))  # type: ignore[arg-type]
        return [d.to_dict() for d in page.auto_paging_iter()]

    def retrieve_balance_transaction(self, txn_id: str) -> dict[str, Any]:
        return self._call("retrieve balance transaction",
                          lambda: self.client.v1.balance_transactions.retrieve(txn_id)).to_dict()

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

    def retrieve_account(self) -> dict[str, Any]:
        """The account behind the key (GET /v1/account): proves the key works and whose it is."""
        return self._call("retrieve account", lambda: self.client.v1.accounts.retrieve_current()).to_dict()

    def retrieve_webhook_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        return self._call("retrieve webhook endpoint",
                          lambda: self.client.v1.webhook_endpoints.retrieve(endpoint_id)).to_dict()

    def list_webhook_endpoints(self) -> list[dict[str, Any]]:
        page = self._call("list webhook endpoints", lambda: self.client.v1.webhook_endpoints.list({"limit": 100}))
        return [ep.to_dict() for ep in page.auto_paging_iter()]

    def update_webhook_endpoint(self, endpoint_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Change an endpoint in place (url, enabled_events, disabled): its signing secret stays."""
        return self._call("update webhook endpoint", lambda: self.client.v1.webhook_endpoints.update(
            endpoint_id, params)).to_dict()  # type: ignore[arg-type]

    def recent_events(self, created_gte: int, limit: int = 100) -> list[dict[str, Any]]:
        """One page of the newest events (for pending_webhooks: deliveries Stripe has not done yet)."""
        page = self._call("list events", lambda: self.client.v1.events.list(
            {"created": {"gte": created_gte}, "limit": limit}))
        return [event.to_dict() for event in page.data]

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
