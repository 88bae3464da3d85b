"""Go live, step by step: each step is checked for real (an API call or the ledger) and the
result is stored with when it was checked; live mode is refused until steps 1-5 are green.

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

from crm.integrations import email_domain
from crm.invoice_lines import Line
from crm.resend_gateway import EmailError, ResendGateway, resend_target
from crm.send_invoice import send_invoice
from crm.send_result import SendRefused
from crm.settings import Settings, load_settings, save_setting
from crm.stripe_endpoint import endpoint_state, public_https_problem
from crm.stripe_gateway import StripeGateway, StripeGatewayError, stripe_target
from db import golive as store
from db.customers import CustomerInput, create_customer
from db.drafts import create_draft, replace_lines
from db.jobs import JobInput, create_job
from db.pool import Conn, connection

TEST_INVOICE_CENTS = 100
TEST_CARD = "4242 4242 4242 4242"


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
GATED = tuple(s.key for s in STEPS)
BY_KEY = {s.key: s for s in STEPS}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    pay_url: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StepResult:
    step: str
    ok: bool
    detail: str
    sandboxed: bool = False
    facts: dict[str, Any] = field(default_factory=dict)


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


# ---------------------------------------------------------------- the checks

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
    f = store.test_invoice_facts(conn, int(invoice_id))
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
        sent = store.test_invoice_facts(conn, invoice_id)
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
