"""Stripe's error shape (``{"error": {...}}``) and the exceptions that produce it."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """Raised by Stripe handlers; rendered with Stripe's body and HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        if self.param:
            err["param"] = self.param
        if request_id:
            err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        err.update(self.extra)
        return {"error": err}


def missing(kind: str, obj_id: str, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(
        f"No such {kind}: '{obj_id}'", status=status, code="resource_missing", param=param
    )


def param_missing(param: str) -> StripeError:
    return StripeError(
        f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def param_invalid(param: str, message: str, code: str = "parameter_invalid") -> StripeError:
    return StripeError(message, code=code, param=param)


def card_declined(decline_code: str = "generic_decline", charge: str | None = None,
                  payment_intent: dict[str, Any] | None = None) -> StripeError:
    extra: dict[str, Any] = {"decline_code": decline_code}
    if charge:
        extra["charge"] = charge
    if payment_intent is not None:
        extra["payment_intent"] = payment_intent
    return StripeError(
        "Your card was declined.", status=402, type="card_error", code="card_declined", **extra
    )


def for_status(status: int, message: str | None = None) -> StripeError:
    """The error Stripe would send for an injected fault with this status."""
    if status == 429:
        return StripeError(message or "Request rate limit exceeded. Sandbox fault injection.",
                           status=429, code="rate_limit")
    if status == 402:
        return card_declined()
    if status == 401:
        return StripeError(message or "Invalid API Key provided (sandbox fault).", status=401)
    if status == 404:
        return StripeError(message or "Not found (sandbox fault).", status=404, code="resource_missing")
    if status == 409:
        return StripeError(message or "There was a conflict (sandbox fault).", status=409,
                           type="invalid_request_error", code="lock_timeout")
    if status >= 500:
        return StripeError(message or "An unexpected error occurred (sandbox fault).",
                           status=status, type="api_error")
    return StripeError(message or f"Sandbox fault {status}.", status=status)
