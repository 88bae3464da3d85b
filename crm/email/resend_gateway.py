"""Every call to Resend goes through here: target, retries, idempotency, error mapping.

The resend library keeps its API key and base URL in module globals, so calls are made
under one lock with both set for the call. Retries (network errors, 5xx, 429, and 409
`concurrent_idempotent_requests`) reuse the same idempotency key; a 409
`invalid_idempotent_request` is never retried: it means the key was used for other content.
"""

from __future__ import annotations

import os
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


def _retryable(exc: ResendError) -> bool:
    code = str(exc.code)
    if code == "409":
        return getattr(exc, "error_type", "") == "concurrent_idempotent_requests"
    return code == "429" or code.startswith("5")


class ResendGateway:
    def __init__(self, target: ResendTarget, attempts: int = 4, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = target
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._sleep = sleep

    def _call(self, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                with _lock:
                    resend.api_key = self.target.api_key
                    resend.api_url = self.target.api_url
                    return fn()
            except ResendError as exc:
                retry = _retryable(exc)
                if not retry or attempt == self.attempts:
                    raise EmailError(f"Resend: {exc}", retryable=retry, code=exc.code) from exc
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

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
