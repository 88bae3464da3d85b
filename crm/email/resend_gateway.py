"""Every call to Resend goes through here: target, retries, idempotency, error mapping.

The resend library keeps its API key and base URL in module globals, so calls are made
under one lock with both set for the call. Retries (network errors, 5xx, 429, and 409
`concurrent_idempotent_requests`) reuse the same idempotency key; a 409
`invalid_idempotent_request` is never retried: it means the key was used for other content.

429 (Resend's team rate limit, 2 requests a second by default) is not a failure but a wait:
it is retried after the `retry-after` the answer names (plus a little jitter, so callers that
were refused together do not all come back in the same second), for as long as
`rate_limit_wait_s` allows, however many attempts that takes; the request was refused before
Resend did anything, so the same idempotency key sends it once. 403 on a send means the From
domain is not verified at Resend: the error says so and what the owner should do.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import resend
from resend.exceptions import ResendError

from crm.config.settings import Settings, sandbox_url
from crm.email.header_values import flattened

T = TypeVar("T")
_lock = threading.Lock()
SANDBOX_API_KEY = "re_sandbox_local"


class EmailError(RuntimeError):
    """Resend refused or could not be reached after retries; `retryable` says which."""

    def __init__(self, message: str, retryable: bool, code: str | int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


@dataclass(frozen=True)
class ResendTarget:
    api_key: str
    api_url: str
    sandboxed: bool


def resend_target(settings: Settings) -> ResendTarget:
    """No API key: the local sandbox. A key: Resend (or RESEND_API_URL, for tests)."""
    key = str(settings["resend.api_key"])
    if not key:
        return ResendTarget(SANDBOX_API_KEY, f"{sandbox_url()}/resend", sandboxed=True)
    return ResendTarget(key, os.environ.get("RESEND_API_URL", "https://api.resend.com").rstrip("/"), sandboxed=False)


UNVERIFIED_DOMAIN_HELP = ("Resend refuses to send from a domain that is not verified: in Settings -> Go live, "
                          "press 'Set up domain in Resend', add the DNS records it lists, and wait for Resend "
                          "to verify them.")


def retry_after_s(exc: ResendError) -> float | None:
    """Seconds a 429 says to wait (its `retry-after` header), or None when it names none."""
    headers = {str(k).lower(): str(v) for k, v in (getattr(exc, "headers", None) or {}).items()}
    try:
        return max(0.0, float(headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _message(exc: ResendError) -> str:
    if str(exc.code) == "403" and "not verified" in str(exc):
        return f"Resend: {exc} {UNVERIFIED_DOMAIN_HELP}"
    return f"Resend: {exc}"


def _retryable(exc: ResendError) -> bool:
    code = str(exc.code)
    if code == "409":
        return getattr(exc, "error_type", "") == "concurrent_idempotent_requests"
    return code == "429" or code.startswith("5")


def _rate_limit_wait_s() -> float:
    return float(os.environ.get("RESEND_RATE_LIMIT_WAIT_S", "").strip() or 60.0)


class ResendGateway:
    def __init__(self, target: ResendTarget, attempts: int = 4, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep, rate_limit_wait_s: float | None = None) -> None:
        self.target = target
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.rate_limit_wait_s = _rate_limit_wait_s() if rate_limit_wait_s is None else rate_limit_wait_s
        self._sleep = sleep

    def _call(self, fn: Callable[[], T]) -> T:
        attempt, waited = 0, 0.0
        while True:
            try:
                with _lock:
                    resend.api_key = self.target.api_key
                    resend.api_url = self.target.api_url
                    return fn()
            except ResendError as exc:
                retry = _retryable(exc)
                told = retry_after_s(exc) if str(exc.code) == "429" else None
                if told is not None and waited + told <= self.rate_limit_wait_s:
                    pause = told + random.uniform(0, max(told, self.backoff_s))
                    waited += pause
                    self._sleep(pause)
                    continue  # a rate limit refusal is a wait, not a failed attempt
                attempt += 1
                if not retry or attempt >= self.attempts:
                    raise EmailError(_message(exc), retryable=retry, code=exc.code) from exc
                self._sleep(self.backoff_s * 2 ** (attempt - 1))

    def send(self, params: dict[str, Any], idempotency_key: str) -> str:
        """Send (or schedule, with params['scheduled_at']); returns Resend's email id."""
        params = flattened(params)  # header values are one line, whoever built the request
        result = self._call(lambda: resend.Emails.send(params, {"idempotency_key": idempotency_key}))  # type: ignore[arg-type, typeddict-item]
        return str(result["id"])

    def cancel(self, email_id: str) -> str:
        """Cancel a scheduled email: 'cancelled', or 'too_late' when Resend already sent it."""
        try:
            self._call(lambda: resend.Emails.cancel(email_id))
        except EmailError as exc:
            if not exc.retryable and str(exc.code) in ("400", "422", "409"):
                return "too_late"
            raise
        return "cancelled"

    def retrieve(self, email_id: str) -> dict[str, Any]:
        return dict(self._call(lambda: resend.Emails.get(email_id)))

    def find_domain(self, domain: str) -> dict[str, Any] | None:
        """The domain as Resend lists it (id, status, open_tracking, click_tracking), or None."""
        listing = self._call(lambda: resend.Domains.list())
        for item in listing.get("data", []):
            if item.get("name") == domain:
                return dict(item)
        return None

    def create_domain(self, domain: str) -> dict[str, Any]:
        """Add a sending domain with open and click tracking on; returns it with its DNS records."""
        return dict(self._call(lambda: resend.Domains.create(
            {"name": domain, "open_tracking": True, "click_tracking": True})))

    def turn_on_tracking(self, domain_id: str) -> None:
        self._call(lambda: resend.Domains.update({"id": domain_id, "open_tracking": True, "click_tracking": True}))

    def verify_domain(self, domain_id: str) -> None:
        """Ask Resend to check the domain's DNS records now (it answers at once, verifies later)."""
        self._call(lambda: resend.Domains.verify(domain_id))

    def domain_verified(self, domain: str) -> bool | None:
        """True/False for a domain Resend knows; None when it does not list it."""
        listing = self._call(lambda: resend.Domains.list())
        for item in listing.get("data", []):
            if item.get("name") == domain:
                return item.get("status") == "verified"
        return None
