"""Wiring the local demo to the sandbox: webhooks from the emulated Stripe and Resend reach the sidecar.

`python -m crm up` (ops/supervisor.py) calls `connect_sandbox` once the children are
starting. When Stripe is sandboxed it registers the sidecar's /webhooks/stripe at the
sandbox through the Stripe gateway (as an owner would at Stripe) and stores the returned
signing secret as `stripe.<mode>.webhook_secrets`; when Resend is sandboxed it points the sandbox's
Resend webhook at /webhooks/resend with a secret stored as `resend.webhook_secret`.
Running it again reuses what is registered (the sandbox keeps its state in ./.data).
"""

from __future__ import annotations

import base64
import logging
import secrets
import time

import httpx

from crm.config.settings import Settings, load_settings, sandbox_url, save_setting, store_registered_webhook_secret
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target
from db.pool import Conn, connect

log = logging.getLogger("crm.demo")


def wait_for_sandbox(base: str, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_sandbox/health", timeout=2, trust_env=False).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def connect_sandbox(webhook_port: str, host: str = "127.0.0.1", timeout_s: float = 20.0) -> list[str]:
    """Register the sidecar's webhook URLs at the sandbox; returns what it did, one line each."""
    base = sandbox_url()
    if not wait_for_sandbox(base, timeout_s):
        note = f"SANDBOX at {base} did not answer; webhooks are not wired (run `python -m crm up` again)."
        log.warning(note)
        return [note]
    done: list[str] = []
    with connect() as conn:
        settings = load_settings(conn)
        if settings.stripe_sandboxed:
            done.append(_register_stripe_endpoint(conn, settings, f"http://{host}:{webhook_port}/webhooks/stripe"))
        if settings.resend_sandboxed:
            done.append(_configure_resend_webhook(conn, base, str(settings["resend.webhook_secret"]),
                                                  f"http://{host}:{webhook_port}/webhooks/resend"))
        conn.commit()
    for line in done:
        log.info("SANDBOX: %s", line)
        print(f"  SANDBOX    {line}", flush=True)
    return done


def _register_stripe_endpoint(conn: Conn, settings: Settings, url: str) -> str:
    target = stripe_target(settings)
    gateway = StripeGateway(target, attempts=2, backoff_s=0.2)
    try:
        existing = gateway.webhook_endpoint_urls()
        stored = settings.stripe_webhook_secrets(target.mode)
        if url in existing and stored:
            # Keep its subscription current (the handled types grow): updated in place, same secret.
            gateway.update_webhook_endpoint(existing[url], {"enabled_events": list(HANDLED_EVENT_TYPES)})
            save_setting(conn, f"stripe.{target.mode}.webhook_endpoint_id", existing[url])
            return f"Stripe webhook endpoint {existing[url]} -> {url} already registered (events brought up to date)"
        if url in existing:
            # Its secret was lost (database reset): Stripe shows a secret only once, so start over.
            gateway.delete_webhook_endpoint(existing[url])
        endpoint_id, secret = gateway.register_webhook_endpoint(url, list(HANDLED_EVENT_TYPES))
    except StripeGatewayError as exc:
        return f"could not register the Stripe webhook endpoint at the sandbox: {exc}"
    store_registered_webhook_secret(conn, settings, target.mode, secret, endpoint_id, None)
    save_setting(conn, f"stripe.{target.mode}.webhook_endpoint_id", endpoint_id)
    return f"registered Stripe webhook endpoint {endpoint_id} -> {url}; signing secret stored encrypted"


def _configure_resend_webhook(conn: Conn, base: str, secret: str, url: str) -> str:
    if not secret.startswith("whsec_"):
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        save_setting(conn, "resend.webhook_secret", secret)
    try:
        resp = httpx.post(f"{base}/_sandbox/resend/webhook", json={"url": url, "secret": secret}, timeout=5,
                          trust_env=False)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        return f"could not configure the sandbox's Resend webhook: {exc}"
    return f"sandbox Resend webhook -> {url}; signing secret stored encrypted"
