"""The Settings page's calls out: register the Stripe webhook endpoint, check the sending
domain, send a test email. Each returns an Outcome to show; secrets never appear in it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from crm.integrations import email_domain
from crm.settings import Settings, store_registered_webhook_secret
from crm.stripe_event_types import HANDLED_EVENT_TYPES
from db.pool import connection


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


def bare_address(value: str) -> str:
    """'Acme <billing@acme.com>' -> 'billing@acme.com'."""
    match = re.search(r"<([^>]+)>", value)
    return (match.group(1) if match else value).strip()


def register_webhook(settings: Settings, url: str, user_id: int | None) -> Outcome:
    from crm.stripe_gateway import StripeGateway, StripeGatewayError, stripe_target

    target = stripe_target(settings)
    try:
        endpoint_id, secret = StripeGateway(target).register_webhook_endpoint(url, list(HANDLED_EVENT_TYPES))
    except StripeGatewayError as exc:
        return Outcome(False, f"Stripe refused the endpoint: {exc}")
    # The previous secrets stay for a rotation window: the old endpoint delivers for a while.
    with connection() as conn:
        store_registered_webhook_secret(conn, settings, target.mode, secret, endpoint_id, user_id)
    return Outcome(True, f"Registered {endpoint_id} at {target.describe()} for {len(HANDLED_EVENT_TYPES)} event types; "
                         "its signing secret is stored encrypted.")


def check_domain(settings: Settings) -> Outcome:
    from crm.resend_gateway import EmailError, ResendGateway, resend_target

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
    from crm.resend_gateway import EmailError, ResendGateway, resend_target
    from db.test_emails import record_test_email

    key = f"test-email-{uuid.uuid4()}"
    subject = f"Test email from {settings['business.name']}"
    params = {"from": str(settings["email.from"]), "to": [to], "subject": subject,
              "text": "This is a test email from your CRM: sending works.",
              "html": "<p>This is a test email from your CRM: sending works.</p>"}
    if settings["email.reply_to"]:
        params["reply_to"] = str(settings["email.reply_to"])
    target = resend_target(settings)
    try:
        email_id = ResendGateway(target, attempts=2).send(params, key)
    except EmailError as exc:
        return Outcome(False, f"Resend refused the test email: {exc}")
    with connection() as conn:
        record_test_email(conn, email_id, key, str(settings["email.from"]), to, subject)
    where = " (SANDBOX: see the sandbox's mailbox page)" if target.sandboxed else ""
    return Outcome(True, f"Test email sent to {to}: id {email_id}{where}.")
