"""The CRM's webhook endpoint at Stripe, per mode: register it (once; re-registering updates it
in place), read its state (enabled or disabled, subscribed events, what is missing), re-enable it.

The endpoint id is kept as setting `stripe.<mode>.webhook_endpoint_id`; its signing secret
(shown by Stripe only when the endpoint is created) as `stripe.<mode>.webhook_secrets`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from crm.config.secrets_store import UndecryptableSecret
from crm.config.settings import Settings, save_setting, store_registered_webhook_secret
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from crm.stripe.gateway import StripeGateway, StripeGatewayError, StripeTarget, stripe_target
from db.pool import connection

SIDECAR_PATH = "/webhooks/stripe"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


@dataclass(frozen=True)
class EndpointState:
    mode: str
    sandboxed: bool
    where: str
    emulated: bool = False  # the sandbox or another emulator: http to this machine is fine there
    endpoint_id: str | None = None
    url: str | None = None
    status: str | None = None  # 'enabled' | 'disabled' | None when there is no endpoint
    enabled_events: list[str] = field(default_factory=list)
    missing_types: list[str] = field(default_factory=list)
    error: str | None = None  # Stripe could not be asked

    @property
    def registered(self) -> bool:
        return self.endpoint_id is not None


# ---------------------------------------------------------------- pure rules

def _matches(pattern: str, etype: str) -> bool:
    return pattern in ("*", etype) or (pattern.endswith(".*") and etype.startswith(pattern[:-1]))


def missing_event_types(enabled_events: list[str]) -> list[str]:
    """The handled types an endpoint with these enabled_events would not be sent."""
    return [t for t in HANDLED_EVENT_TYPES if not any(_matches(p, t) for p in enabled_events)]


def public_https_problem(url: str, emulated: bool) -> str | None:
    """Stripe delivers only to public HTTPS URLs; the sandbox (on this machine) is the exception."""
    parsed = urlparse(url)
    if emulated:
        return None
    host = parsed.hostname or ""
    if parsed.scheme != "https":
        return f"{url} is not HTTPS: Stripe delivers live events only to https:// URLs."
    try:
        private = not ipaddress.ip_address(host).is_global
    except ValueError:
        private = host == "localhost" or host.endswith((".local", ".internal", ".localhost"))
    if private:
        return f"{url} is not a public address: Stripe cannot reach it."
    return None


# ---------------------------------------------------------------- Stripe calls

def _gateway(target: StripeTarget, fast: bool = False) -> StripeGateway:
    """`fast`: one attempt, short timeout (a health panel must not hang on an unreachable Stripe)."""
    if fast:
        return StripeGateway(target, attempts=1, network_retries=0, timeout_s=5.0)
    return StripeGateway(target, attempts=2, backoff_s=0.2)


def _ours(gateway: StripeGateway, settings: Settings, mode: str, url: str | None = None) -> dict[str, Any] | None:
    """Our endpoint: the stored id when Stripe still has it, else one at `url` (or at /webhooks/stripe)."""
    stored = str(settings[f"stripe.{mode}.webhook_endpoint_id"] or "")
    if stored:
        try:
            return gateway.retrieve_webhook_endpoint(stored)
        except StripeGatewayError as exc:
            if exc.http_status != 404:
                raise
    endpoints = gateway.list_webhook_endpoints()
    same = [ep for ep in endpoints if url and ep.get("url") == url]
    ours = same or [ep for ep in endpoints if str(ep.get("url", "")).endswith(SIDECAR_PATH)]
    return ours[0] if ours else None


def endpoint_state(settings: Settings, mode: str, fast: bool = False) -> EndpointState:
    try:
        target = stripe_target(settings, mode)
    except UndecryptableSecret as exc:
        return EndpointState(mode, False, "Stripe", False, error=str(exc))
    where, emulated = target.describe(), target.emulated
    try:
        ep = _ours(_gateway(target, fast), settings, mode)
    except StripeGatewayError as exc:
        return EndpointState(mode, target.sandboxed, where, emulated, error=str(exc))
    if ep is None:
        return EndpointState(mode, target.sandboxed, where, emulated, missing_types=list(HANDLED_EVENT_TYPES))
    events = [str(e) for e in ep.get("enabled_events") or []]
    return EndpointState(mode, target.sandboxed, where, emulated, endpoint_id=str(ep["id"]), url=str(ep.get("url")),
                         status=str(ep.get("status")), enabled_events=events,
                         missing_types=missing_event_types(events))


def register(settings: Settings, mode: str, url: str, user_id: int | None) -> Outcome:
    """Subscribe `url` to every handled event type in `mode`: one endpoint, updated in place when it
    exists and we hold its signing secret; created (replacing one at the same URL whose secret we
    lost, since Stripe shows a secret only once) otherwise."""
    target = stripe_target(settings, mode)
    gateway = _gateway(target)
    secrets = settings.stripe_webhook_secrets(mode)
    events = list(HANDLED_EVENT_TYPES)
    try:
        existing = _ours(gateway, settings, mode, url)
        if existing is not None and secrets:
            ep = gateway.update_webhook_endpoint(str(existing["id"]), {"url": url, "enabled_events": events})
            with connection() as conn:
                save_setting(conn, f"stripe.{mode}.webhook_endpoint_id", str(ep["id"]), user_id)
            return Outcome(True, f"Updated {ep['id']} in place at {target.describe()}: {url}, "
                                 f"{len(events)} event types, status {ep.get('status')}. "
                                 "The signing secret is unchanged.")
        if existing is not None and existing.get("url") == url:
            gateway.delete_webhook_endpoint(str(existing["id"]))
        endpoint_id, secret = gateway.register_webhook_endpoint(url, events)
    except StripeGatewayError as exc:
        return Outcome(False, f"Stripe refused the endpoint: {exc}")
    with connection() as conn:  # older secrets stay for the rotation window (crm/stripe/webhook_secrets.py)
        store_registered_webhook_secret(conn, settings, mode, secret, endpoint_id, user_id)
        save_setting(conn, f"stripe.{mode}.webhook_endpoint_id", endpoint_id, user_id)
    return Outcome(True, f"Registered {endpoint_id} at {target.describe()} for {len(events)} event types; "
                         "its signing secret is stored encrypted.")


def reenable(settings: Settings, mode: str) -> Outcome:
    """Turn a disabled endpoint back on (webhook_endpoints.update(id, disabled=False))."""
    state = endpoint_state(settings, mode)
    if state.error:
        return Outcome(False, f"Could not ask Stripe: {state.error}")
    if state.endpoint_id is None:
        return Outcome(False, f"There is no {mode} webhook endpoint to re-enable: register one.")
    try:
        ep = _gateway(stripe_target(settings, mode)).update_webhook_endpoint(state.endpoint_id, {"disabled": False})
    except StripeGatewayError as exc:
        return Outcome(False, f"Stripe refused to re-enable {state.endpoint_id}: {exc}")
    return Outcome(ep.get("status") == "enabled", f"{state.endpoint_id} is {ep.get('status')} again.")
