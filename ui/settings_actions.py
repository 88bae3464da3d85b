"""The Settings page's calls out: register (or re-enable) the Stripe webhook endpoint, webhook
health (cached briefly), check the sending domain, send a test email. Each action returns an
Outcome to show; secrets never appear in it. The go-live rules are in crm/golive/steps.py."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crm.config.integrations import email_domain
from crm.config.settings import Settings
from db.pool import connection

if TYPE_CHECKING:
    from crm.stripe.webhook_health import ModeHealth


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def bare_address(value: str) -> str:
    """'Acme <billing@acme.com>' -> 'billing@acme.com'."""
    match = re.search(r"<([^>]+)>", value)
    return (match.group(1) if match else value).strip()


def register_webhook(settings: Settings, url: str, user_id: int | None, mode: str | None = None) -> Outcome:
    """Register (or update in place) the sidecar's endpoint for `mode` (default: the current mode)."""
    from crm.stripe.endpoint import register

    result = register(settings, mode or settings.stripe_mode, url, user_id)
    forget_webhook_health()
    return Outcome(result.ok, result.message)


def reenable_webhook(settings: Settings, mode: str) -> Outcome:
    from crm.stripe.endpoint import reenable

    result = reenable(settings, mode)
    forget_webhook_health()
    return Outcome(result.ok, result.message)


# Webhook health asks Stripe about each mode's endpoint: keep the answer for a short while so every
# rerun of the page (each click) does not cost Stripe calls; actions that change it forget it.
HEALTH_TTL_S = 30.0
_HEALTH_KEY = "_webhook_health"


def forget_webhook_health() -> None:
    import streamlit as st

    st.session_state.pop(_HEALTH_KEY, None)


def webhook_health(settings: Settings) -> list[ModeHealth]:
    import streamlit as st

    from crm.golive.steps import fingerprints
    from crm.stripe.webhook_health import health

    key = (settings.stripe_mode, tuple(sorted(fingerprints(settings).items())))
    cached = st.session_state.get(_HEALTH_KEY)
    if cached and cached[0] == key and time.monotonic() - cached[1] < HEALTH_TTL_S:
        fresh: list[ModeHealth] = cached[2]
        return fresh
    with connection() as conn:
        result = health(conn, settings)
    st.session_state[_HEALTH_KEY] = (key, time.monotonic(), result)
    return result


def check_domain(settings: Settings) -> Outcome:
    from crm.email.resend_gateway import EmailError, ResendGateway, resend_target

    domain = email_domain(str(settings["email.from"]))
    if not domain:
        return Outcome(False, "Set a From address first.")
    try:
        verified = ResendGateway(resend_target(settings), attempts=2).domain_verified(domain)
    except EmailError as exc:
        return Outcome(False, f"Could not ask Resend: {exc}")
    if verified is None:
        return Outcome(False, f"{domain} is not added in Resend yet: add it and its DNS records.")
    return Outcome(bool(verified), f"{domain} is verified." if verified else f"{domain} is not verified yet.")


def send_test_email(settings: Settings, to: str) -> Outcome:
    from crm.golive.checks import send_test_email as send

    ok, message = send(settings, to)
    return Outcome(ok, message)
