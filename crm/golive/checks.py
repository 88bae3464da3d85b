"""The checks behind the go-live steps (crm/golive/steps.py): each asks Stripe, Resend or the
ledger for real and says what it found, in words the owner can act on. Nothing is stored
here; crm/golive/steps.py remembers the results.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from crm.config.integrations import email_domain
from crm.config.settings import Settings
from crm.email.resend_gateway import EmailError, ResendGateway, resend_target
from crm.stripe.endpoint import endpoint_state, public_https_problem
from crm.stripe.event_types import PAYMENT_EVENT_TYPES
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target
from crm.stripe.payment_methods import missing_capabilities
from db import golive as store
from db import settings_emails
from db.pool import Conn, connection

TEST_CARD = "4242 4242 4242 4242"


@dataclass(frozen=True)
class StepResult:
    step: str
    ok: bool
    detail: str
    sandboxed: bool = False
    facts: dict[str, Any] = field(default_factory=dict)


def _sandbox_note(mode: str) -> str:
    return f" SANDBOX: no {mode} key is set, so the local emulator stands in (no real money moves)."


def check_stripe_key(settings: Settings, mode: str) -> StepResult:
    step = "stripe_test_key" if mode == "test" else "live"
    target = stripe_target(settings, mode)
    key = settings.stripe_secret_key(mode)
    if key and not key.startswith((f"sk_{mode}_", f"rk_{mode}_")):
        return StepResult(step, False, f"The {mode} key does not start with sk_{mode}_ or rk_{mode}_.")
    try:
        account = StripeGateway(target, attempts=2, backoff_s=0.2).retrieve_account()
    except StripeGatewayError as exc:
        return _stripe_failed(step, mode, exc, target.sandboxed)
    profile = account.get("business_profile") or {}
    dashboard = (account.get("settings") or {}).get("dashboard") or {}
    name = dashboard.get("display_name") or profile.get("name") or account.get("id")
    facts = {"account_id": account.get("id"), "account_name": name,
             "charges_enabled": account.get("charges_enabled")}
    if mode == "live" and not target.sandboxed and not account.get("charges_enabled"):
        return StepResult(step, False, f"The live key works ({name}, {account.get('id')}), but Stripe has not "
                                       "enabled charges on the account yet: finish activating it in Stripe.",
                          facts=facts)
    missing = missing_capabilities(account.get("capabilities"))
    if missing:
        # Stripe refuses an invoice offering a method the account cannot take: say so here,
        # not at the first send.
        return StepResult(step, False, f"The {mode} key works ({name}, {account.get('id')}), but invoices offer "
                                       f"payment methods the account cannot take yet: "
                                       f"{'; '.join(m.describe() for m in missing)}. Activate them in Stripe's "
                                       "Dashboard (Settings > Payment methods), then check again.",
                          target.sandboxed, facts | {"inactive_capabilities": [m.capability for m in missing]})
    detail = f"The {mode} key works: account {name} ({account.get('id')})."
    return StepResult(step, True, detail + (_sandbox_note(mode) if target.sandboxed else ""), target.sandboxed, facts)


def _stripe_failed(step: str, mode: str, exc: StripeGatewayError, sandboxed: bool) -> StepResult:
    what = "could not be reached" if exc.retryable else "refused the key"
    return StepResult(step, False, f"Stripe {what} ({mode} mode): {exc}", sandboxed)


def check_webhook(settings: Settings, mode: str) -> StepResult:
    step = "test_webhook" if mode == "test" else "live"
    state = endpoint_state(settings, mode)
    problems: list[str] = []
    facts: dict[str, Any] = {"endpoint_id": state.endpoint_id, "url": state.url, "status": state.status,
                             "missing_types": state.missing_types}
    if state.error:
        problems.append(f"Could not ask Stripe about the {mode} endpoint: {state.error}")
    elif not state.registered:
        problems.append(f"No {mode}-mode webhook endpoint is registered: "
                        "register the sidecar's URL (Settings → Stripe).")
    else:
        url_problem = public_https_problem(str(state.url), state.emulated)
        if url_problem:
            problems.append(url_problem)
        if state.status != "enabled":
            problems.append(f"Stripe has {str(state.status).upper()} {state.endpoint_id}: "
                            "re-enable it (Webhook health).")
        if state.missing_types:
            problems.append(f"{state.endpoint_id} is not subscribed to {', '.join(state.missing_types)}: "
                            "register again (it is updated in place).")
    if not settings.stripe_webhook_secrets(mode):
        problems.append(f"No {mode} signing secret is stored, so the sidecar would refuse every delivery: "
                        "register the endpoint here (Stripe shows the secret only when it creates one).")
    if problems:
        return StepResult(step, False, " ".join(problems), state.sandboxed, facts)
    detail = f"{state.endpoint_id} at {state.url} is enabled for all the event types the CRM handles."
    note = " SANDBOX endpoint (http to this machine is allowed only here)." if state.emulated else ""
    return StepResult(step, True, detail + note, state.sandboxed, facts)


def check_resend(settings: Settings) -> StepResult:
    target = resend_target(settings)
    domain = email_domain(str(settings["email.from"]))
    problems: list[str] = []
    facts: dict[str, Any] = {"domain": domain}
    found: dict[str, Any] | None = None
    try:
        found = ResendGateway(target, attempts=2, backoff_s=0.2).find_domain(domain) if domain else None
    except EmailError as exc:
        refused = str(exc.code) in ("401", "403")
        problems.append(f"Resend refused the API key: {exc}" if refused else f"Could not ask Resend: {exc}")
    else:
        if not domain:
            problems.append("Set a From address on your own domain.")
        elif found is None:
            problems.append(f"{domain} is not added in Resend: press 'Set up domain in Resend'.")
        else:
            facts.update(status=found.get("status"), open_tracking=found.get("open_tracking"),
                         click_tracking=found.get("click_tracking"))
            if found.get("status") != "verified":
                problems.append(f"{domain} is {found.get('status')} in Resend, not verified: add its DNS records, "
                                "then set it up again.")
            off = [k for k in ("open", "click") if not found.get(f"{k}_tracking")]
            if off:
                problems.append(f"{' and '.join(off).capitalize()} tracking is off for {domain}.")
    if settings.sources["email.from"] == "default":
        problems.append(f"The From address is still the placeholder {settings['email.from']}.")
    if not settings["resend.webhook_secret"]:
        problems.append("The Resend webhook signing secret (whsec_…) is not set: add a webhook at Resend for "
                        "https://<sidecar>/webhooks/resend and save its secret (Settings → Email).")
    if problems:
        return StepResult("resend", False, " ".join(problems), target.sandboxed, facts)
    detail = f"Resend key works; {domain} is verified with open and click tracking on; webhook secret set."
    return StepResult("resend", True, detail + (" SANDBOX: no Resend key is set, the local emulator stands in."
                                                if target.sandboxed else ""), target.sandboxed, facts)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def check_test_invoice(conn: Conn, settings: Settings) -> StepResult:
    stored = store.checks(conn).get("test_invoice")
    invoice_id = (stored or {}).get("facts", {}).get("invoice_id")
    sandboxed = stripe_target(settings, "test").sandboxed
    if not invoice_id:
        return StepResult("test_invoice", False, "Not sent yet: press 'Send test invoice'.", sandboxed)
    f = store.test_invoice_facts(conn, int(invoice_id), PAYMENT_EVENT_TYPES)
    if f is None:
        return StepResult("test_invoice", False, f"Test invoice #{invoice_id} no longer exists: send another.",
                          sandboxed)
    facts: dict[str, Any] = {"invoice_id": f["id"], "pay_url": f["hosted_invoice_url"],
                             "sent_at": f["sent_at"].isoformat() if f["sent_at"] else None}
    if f["status"] != "paid":
        return StepResult("test_invoice", False, f"Test invoice #{f['id']} is {f['status']}: open its pay link and "
                                                 f"pay with the test card {TEST_CARD}.", sandboxed, facts)
    if f["paid_webhook_at"] is None:
        return StepResult("test_invoice", False, f"Test invoice #{f['id']} is paid, but its invoice.paid webhook never "
                                                 "arrived (reconcile found the payment): Stripe is not reaching the "
                                                 "sidecar. See Webhook health, then send another.", sandboxed, facts)
    elapsed = (f["paid_webhook_at"] - f["sent_at"]).total_seconds()
    facts["seconds_to_webhook"] = round(elapsed, 1)
    return StepResult("test_invoice", True, f"Test invoice #{f['id']} was paid and its webhook arrived "
                                            f"{_duration(elapsed)} after it was sent.", sandboxed, facts)


def check_live(settings: Settings) -> StepResult:
    key, endpoint = check_stripe_key(settings, "live"), check_webhook(settings, "live")
    return StepResult("live", key.ok and endpoint.ok, f"{key.detail} {endpoint.detail}",
                      key.sandboxed or endpoint.sandboxed, {**key.facts, **endpoint.facts})


def send_test_email(settings: Settings, to: str) -> tuple[bool, str]:
    """The Settings page's test email, from the business's address; recorded so Activity lists it.
    Returns whether it went and what to tell the owner."""
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
        return False, f"Resend refused the test email: {exc}"
    with connection() as conn:
        settings_emails.record_test_email(conn, email_id, key, str(settings["email.from"]), to, subject)
    where = " (SANDBOX: see the sandbox's mailbox page)" if target.sandboxed else ""
    return True, f"Test email sent to {to}: id {email_id}{where}."
