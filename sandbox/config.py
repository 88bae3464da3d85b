"""Sandbox settings, read once from environment variables (CLI flags override)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_STRIPE_API_VERSION = "2026-10-28.endive"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 12111
    state_file: str | None = None
    # Base delay of the exponential webhook retry backoff, in seconds.
    webhook_retry_base_s: float = 1.0
    webhook_retry_cap_s: float = 60.0
    webhook_max_attempts: int = 5
    webhook_timeout_s: float = 10.0
    resend_webhook_url: str | None = None
    resend_webhook_secret: str | None = None
    # How often scheduled Resend emails are checked for being due.
    resend_tick_s: float = 1.0
    stripe_api_version: str = DEFAULT_STRIPE_API_VERSION
    business_name: str = "Sandbox Business"
    # Base of links the sandbox hands out (hosted invoice pages); default: the request's host.
    public_url: str | None = None
    # Deliveries to public hosts are refused so nothing leaves the machine.
    allow_public_webhooks: bool = False
    # Bank debits (ACH) stay processing this long (sandbox time) before they settle; Stripe
    # takes about four business days. bank_debits_fail makes settlements fail instead.
    bank_settle_delay_s: float = 30.0
    bank_debits_fail: bool = False
    # Refunds stay pending this long (sandbox time) before they settle: card refunds (0: inside
    # the request, as Stripe's test mode) and bank-debit refunds (days at Stripe).
    # refunds_fail makes settlements fail with refund_failure_reason.
    card_refund_delay_s: float = 0.0
    bank_refund_delay_s: float = 30.0
    refunds_fail: bool = False
    refund_failure_reason: str = "declined"
    # Resend's team rate limit (requests a second; 0 turns it off) and how long a domain stays
    # pending after POST /domains/{id}/verify while its DNS records are checked (sandbox time).
    resend_rate_per_s: float = 2.0
    resend_verify_delay_s: float = 5.0
    # The Twilio account the emulator serves (Basic auth: Account SID and auth token), its
    # Messaging Service and the number that service sends from; how long a text takes from
    # sent to delivered.
    twilio_account_sid: str = "AC5a0d1b0c5a0d1b0c5a0d1b0c5a0d1b0c"
    twilio_auth_token: str = "5a0d1b0c5a0d1b0c5a0d1b0c5a0d1b0c"
    twilio_messaging_service_sid: str = "MG5a0d1b0c5a0d1b0c5a0d1b0c5a0d1b0c"
    twilio_from_number: str = "+15005550006"
    twilio_delivery_s: float = 0.3
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            host=os.environ.get("SANDBOX_HOST", "127.0.0.1"),
            port=_int("SANDBOX_PORT", 12111),
            state_file=os.environ.get("SANDBOX_STATE_FILE") or None,
            webhook_retry_base_s=_float("SANDBOX_WEBHOOK_RETRY_BASE", 1.0),
            webhook_retry_cap_s=_float("SANDBOX_WEBHOOK_RETRY_CAP", 60.0),
            webhook_max_attempts=_int("SANDBOX_WEBHOOK_MAX_ATTEMPTS", 5),
            webhook_timeout_s=_float("SANDBOX_WEBHOOK_TIMEOUT", 10.0),
            resend_webhook_url=os.environ.get("SANDBOX_RESEND_WEBHOOK_URL") or None,
            resend_webhook_secret=os.environ.get("SANDBOX_RESEND_WEBHOOK_SECRET") or None,
            resend_tick_s=_float("SANDBOX_RESEND_TICK", 1.0),
            stripe_api_version=os.environ.get(
                "SANDBOX_STRIPE_API_VERSION", DEFAULT_STRIPE_API_VERSION
            ),
            business_name=os.environ.get("SANDBOX_BUSINESS_NAME", "Sandbox Business"),
            public_url=(os.environ.get("SANDBOX_PUBLIC_URL") or "").rstrip("/") or None,
            bank_settle_delay_s=_float("SANDBOX_BANK_SETTLE_DELAY_S", 30.0),
            bank_debits_fail=os.environ.get("SANDBOX_BANK_DEBITS_FAIL", "").lower() in ("1", "true", "yes"),
            card_refund_delay_s=_float("SANDBOX_CARD_REFUND_DELAY_S", 0.0),
            bank_refund_delay_s=_float("SANDBOX_BANK_REFUND_DELAY_S", 30.0),
            refunds_fail=os.environ.get("SANDBOX_REFUNDS_FAIL", "").lower() in ("1", "true", "yes"),
            resend_rate_per_s=_float("SANDBOX_RESEND_RATE_PER_S", 2.0),
            resend_verify_delay_s=_float("SANDBOX_RESEND_VERIFY_DELAY_S", 5.0),
            twilio_account_sid=os.environ.get("SANDBOX_TWILIO_ACCOUNT_SID") or cls.twilio_account_sid,
            twilio_auth_token=os.environ.get("SANDBOX_TWILIO_AUTH_TOKEN") or cls.twilio_auth_token,
            twilio_messaging_service_sid=(os.environ.get("SANDBOX_TWILIO_MESSAGING_SERVICE_SID")
                                          or cls.twilio_messaging_service_sid),
            twilio_from_number=os.environ.get("SANDBOX_TWILIO_FROM_NUMBER") or cls.twilio_from_number,
            twilio_delivery_s=_float("SANDBOX_TWILIO_DELIVERY_S", 0.3),
        )
