"""Go live, step by step: each step is checked for real (an API call or the ledger) and the
result is stored with when it was checked; live mode is refused until steps 1-5 are green.

The checks themselves are in crm/golive/checks.py; this module holds the steps, what each
result depended on, the rule for switching to live, and the actions the steps ask for.

1. Stripe test key: GET /v1/account answers and shows whose account it is.
2. Test webhook endpoint: registered at a public HTTPS URL (the sandbox is the only exception),
   enabled, subscribed to every type in HANDLED_EVENT_TYPES, its signing secret stored.
3. Resend: the key works, the From domain is verified with open and click tracking on, and the
   Resend webhook signing secret is set.
4. Test invoice: a small invoice sent to the owner's own address through the real Send workflow,
   paid on Stripe's hosted page with a test card; green once its invoice.paid webhook arrived
   (the time from send to webhook is shown). Paid but found only by reconcile is not green.
5. Live key and live endpoint: steps 1 and 2 for live mode (in the sandbox demo, the sandbox's
   live mode, labelled as such).
6. Switch to live: `switch_mode` refuses, with the reasons, until 1-5 are green for the current
   settings: each stored result carries a fingerprint of what it checked (a hash, never a
   secret), so changing a key or endpoint after checking makes that step count as unchecked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm.config.integrations import email_domain
from crm.config.settings import Settings, load_settings, save_setting
from crm.email.resend_gateway import EmailError, ResendGateway, resend_target
from crm.golive.checks import (
    TEST_CARD,
    StepResult,
    check_live,
    check_resend,
    check_stripe_key,
    check_test_invoice,
    check_webhook,
)
from crm.send.lines import Line
from crm.send.result import SendRefused
from crm.send.workflow import send_invoice
from crm.stripe.event_types import PAYMENT_EVENT_TYPES
from crm.stripe.gateway import stripe_target
from db import golive as store
from db.customers import CustomerInput, create_customer
from db.drafts import create_draft, replace_lines
from db.jobs import JobInput, create_job
from db.pool import Conn, connection

TEST_INVOICE_CENTS = 100


@dataclass(frozen=True)
class Step:
    key: str
    number: int
    title: str
    how: str


STEPS: tuple[Step, ...] = (
    Step("stripe_test_key", 1, "Stripe test key",
         "Save your test secret key (sk_test_…) below; the check asks Stripe whose account it is."),
    Step("test_webhook", 2, "Test webhook endpoint",
         "Register the sidecar's public https://…/webhooks/stripe URL for test mode below."),
    Step("resend", 3, "Email (Resend)",
         "Save the Resend key, a From address on your own domain and the Resend webhook secret; "
         "'Set up domain in Resend' adds the domain with tracking on and asks Resend to verify it."),
    Step("test_invoice", 4, "Test invoice, paid",
         f"Send a test invoice to yourself, open its link and pay with the test card {TEST_CARD}."),
    Step("live", 5, "Live key and live endpoint",
         "Save your live secret key (sk_live_…) and register the same URL for live mode."),
)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    pay_url: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StepView:
    """One row of the checklist as the page and doctor show it."""

    step: Step
    ok: bool | None  # None: never checked
    current: bool  # checked with the settings in force now
    detail: str
    checked_at: datetime | None
    sandboxed: bool
    facts: dict[str, Any]

    @property
    def green(self) -> bool:
        return bool(self.ok) and self.current


# ---------------------------------------------------------------- fingerprints

def _fp(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:20]


def fingerprints(settings: Settings) -> dict[str, str]:
    """What each step depends on, hashed: a stored green counts only while these match.

    A secret that cannot be decrypted (wrong CRM_SECRET_KEY) counts as a change, so the page
    still renders and shows the step unchecked instead of failing."""
    def val(name: str) -> object:
        return "undecryptable" if name in settings.undecryptable else settings.values[name]

    def key(mode: str) -> object:
        return val(f"stripe.{mode}.secret_key") or "sandbox"

    def endpoint(mode: str) -> tuple[object, object]:
        return val(f"stripe.{mode}.webhook_endpoint_id"), val(f"stripe.{mode}.webhook_secrets")

    return {
        "stripe_test_key": _fp("test", key("test")),
        "test_webhook": _fp("test", key("test"), *endpoint("test")),
        "resend": _fp(val("resend.api_key") or "sandbox", val("email.from"), val("resend.webhook_secret")),
        "test_invoice": _fp(key("test"), *endpoint("test"), val("resend.api_key") or "sandbox"),
        "live": _fp("live", key("live"), *endpoint("live")),
    }


def _save(result: StepResult, settings: Settings, user_id: int | None, actor: str) -> StepResult:
    with connection() as conn:
        store.save_check(conn, result.step, result.ok, result.detail, result.facts,
                         fingerprints(settings)[result.step], result.sandboxed, user_id, actor)
    return result


def check_step(step: str, settings: Settings, user_id: int | None = None, actor: str = "dashboard") -> StepResult:
    """Check one step for real and remember the result."""
    if step == "stripe_test_key":
        result = check_stripe_key(settings, "test")
    elif step == "test_webhook":
        result = check_webhook(settings, "test")
    elif step == "resend":
        result = check_resend(settings)
    elif step == "test_invoice":
        with connection() as conn:
            result = check_test_invoice(conn, settings)
    elif step == "live":
        result = check_live(settings)
    else:
        raise ValueError(f"unknown go-live step {step!r}")
    return _save(result, settings, user_id, actor)


def check_all(settings: Settings, user_id: int | None = None, actor: str = "dashboard") -> list[StepResult]:
    return [check_step(s.key, settings, user_id, actor) for s in STEPS]


def checklist(conn: Conn, settings: Settings) -> list[StepView]:
    stored = store.checks(conn)
    prints = fingerprints(settings)
    views = []
    for s in STEPS:
        row = stored.get(s.key)
        if row is None:
            views.append(StepView(s, None, False, "Not checked yet.", None, False, {}))
            continue
        current = row["fingerprint"] == prints[s.key]
        detail = row["detail"] if current else "Checked with other settings (a key, endpoint or address changed " \
                                               "since): check again. Last time: " + row["detail"]
        views.append(StepView(s, bool(row["ok"]), current, detail, row["checked_at"], bool(row["sandboxed"]),
                              dict(row["facts"] or {})))
    return views


# ---------------------------------------------------------------- the rule: switching to live

def live_refusals(conn: Conn, settings: Settings) -> list[str]:
    """Why live mode may not be switched on now; empty when steps 1-5 are all green."""
    reasons = []
    for view in checklist(conn, settings):
        s = view.step
        if view.ok is None:
            reasons.append(f"Step {s.number} ({s.title}) has not been checked.")
        elif not view.current:
            reasons.append(f"Step {s.number} ({s.title}) was checked with other settings: check it again.")
        elif not view.ok:
            reasons.append(f"Step {s.number} ({s.title}) is not done: {view.detail}")
    return reasons


def switch_mode(new_mode: str, user_id: int | None, actor: str = "dashboard") -> Outcome:
    """Change the Stripe mode. Live is refused, with the reasons, until steps 1-5 are green; step 5
    is checked again first, so an endpoint Stripe disabled since does not slip through."""
    if new_mode not in ("test", "live"):
        return Outcome(False, f"Unknown mode {new_mode!r}.")
    with connection() as conn:
        settings = load_settings(conn)
    if settings.sources["stripe.mode"] == "env":
        return Outcome(False, "STRIPE_MODE is set in the environment, which wins: change it there.")
    if new_mode == settings.stripe_mode:
        return Outcome(True, f"Stripe is already in {new_mode} mode.")
    if new_mode == "live":
        check_step("live", settings, user_id, actor)
        with connection() as conn:
            reasons = live_refusals(conn, settings)
        if reasons:
            return Outcome(False, "Live mode is refused until steps 1-5 are green. " + " ".join(reasons))
    with connection() as conn:
        save_setting(conn, "stripe.mode", new_mode, user_id)
    if new_mode == "live" and not settings.stripe_secret_key("live"):
        return Outcome(True, "Stripe mode is now live, in the SANDBOX: no live key is set, so no real card is "
                             "charged (and Send refuses until a live key is saved).")
    return Outcome(True, f"Stripe mode is now {new_mode}." + (" Live mode charges real cards." if new_mode == "live"
                                                               else ""))


# ---------------------------------------------------------------- actions

def send_test_invoice(settings: Settings, owner_email: str, owner_name: str, user_id: int | None,
                      actor: str) -> Outcome:
    """Step 4: a small invoice to the owner's own address, through the real Send workflow, to a
    test customer and job made for it (reminders off)."""
    if settings.stripe_mode != "test":
        return Outcome(False, "The test invoice goes out in test mode: switch back to test mode first.")
    with connection() as conn:
        customer = store.golive_customer(conn, owner_email) or create_customer(
            conn, CustomerInput(f"Go-live test ({owner_name or owner_email})", owner_email, reminders_opt_out=True),
            actor)
        job = create_job(conn, JobInput(customer, "Go-live test invoice",
                                        "The owner pays this to themselves with a test card."), actor)
        invoice_id = create_draft(conn, job, "standard", None, str(settings["business.currency"]), actor, user_id,
                                  memo=f"Go-live test: pay with the test card {TEST_CARD}.")
        replace_lines(conn, invoice_id, [Line("Go-live test payment", 1, TEST_INVOICE_CENTS)], TEST_INVOICE_CENTS,
                      actor)
    try:
        result = send_invoice(invoice_id, actor)
    except SendRefused as exc:
        return Outcome(False, f"The test invoice #{invoice_id} was not sent: {exc}")
    if not result.ok:
        return Outcome(False, f"The test invoice #{invoice_id} stopped: {result.message}")
    with connection() as conn:
        sent = store.test_invoice_facts(conn, invoice_id, PAYMENT_EVENT_TYPES)
        assert sent is not None
        store.save_check(conn, "test_invoice", False, f"Test invoice #{invoice_id} sent to {owner_email}: open its "
                         f"pay link and pay with the test card {TEST_CARD}.",
                         {"invoice_id": invoice_id, "pay_url": result.pay_url,
                          "sent_at": sent["sent_at"].isoformat() if sent["sent_at"] else None},
                         fingerprints(settings)["test_invoice"], stripe_target(settings, "test").sandboxed,
                         user_id, actor)
    return Outcome(True, f"Test invoice #{invoice_id} sent to {owner_email}. Pay it with {TEST_CARD}; this step "
                         "turns green when its webhook arrives.", pay_url=result.pay_url)


def setup_resend_domain(settings: Settings) -> Outcome:
    """Add the From domain at Resend with open and click tracking on (or turn tracking on), and ask
    Resend to verify it; returns the DNS records to add when it is new."""
    domain = email_domain(str(settings["email.from"]))
    if not domain:
        return Outcome(False, "Set a From address first.")
    gateway = ResendGateway(resend_target(settings), attempts=2, backoff_s=0.2)
    records: list[dict[str, Any]] = []
    done = []
    try:
        found = gateway.find_domain(domain)
        if found is None:
            created = gateway.create_domain(domain)
            records = [dict(r) for r in created.get("records") or []]
            found = {"id": created["id"], "status": created.get("status"), "open_tracking": True,
                     "click_tracking": True}
            done.append(f"added {domain} with open and click tracking on")
        elif not (found.get("open_tracking") and found.get("click_tracking")):
            gateway.turn_on_tracking(str(found["id"]))
            done.append("turned on open and click tracking")
        if found.get("status") != "verified":
            gateway.verify_domain(str(found["id"]))
            done.append("asked Resend to verify its DNS records")
    except EmailError as exc:
        return Outcome(False, f"Resend refused: {exc}")
    message = (f"{domain}: " + "; ".join(done) + ".") if done else f"{domain} is already verified with tracking on."
    return Outcome(True, message, records=records)
