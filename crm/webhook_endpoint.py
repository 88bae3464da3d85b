"""The Stripe webhook endpoint the sidecar needs: every handled event type subscribed.

Endpoints registered before a type joined crm.stripe_event_types.HANDLED_EVENT_TYPES lack
it, and Stripe never delivers what an endpoint does not subscribe: `subscription_gaps`
says so (doctor, Settings), `ensure_endpoint` fixes it in place with
`webhook_endpoints.update` (same endpoint, same signing secret) instead of creating a
second endpoint at the same URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm.stripe_event_types import HANDLED_EVENT_TYPES
from crm.stripe_gateway import StripeGateway


@dataclass(frozen=True)
class EndpointGap:
    endpoint_id: str
    url: str
    missing: tuple[str, ...]
    disabled: bool

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"does not subscribe {', '.join(self.missing)}")
        if self.disabled:
            parts.append("is disabled at Stripe")
        return f"webhook endpoint {self.endpoint_id} ({self.url}) " + " and ".join(parts) + \
            ": register it again from Settings to fix it in place"


def missing_types(enabled_events: list[str]) -> tuple[str, ...]:
    if "*" in enabled_events:
        return ()
    return tuple(t for t in HANDLED_EVENT_TYPES if t not in enabled_events
                 and f"{t.rsplit('.', 1)[0]}.*" not in enabled_events)


def subscription_gaps(gateway: StripeGateway, url: str | None = None) -> list[EndpointGap]:
    """Registered endpoints (the one at `url` when given) that miss a handled type or are disabled."""
    gaps = []
    for ep in gateway.webhook_endpoints():
        if url is not None and ep["url"] != url:
            continue
        missing = missing_types(ep["enabled_events"])
        if missing or ep["status"] == "disabled":
            gaps.append(EndpointGap(ep["id"], ep["url"], missing, ep["status"] == "disabled"))
    return gaps


@dataclass(frozen=True)
class Registration:
    endpoint_id: str
    secret: str | None  # only when a new endpoint was created (Stripe shows it once)
    action: str  # 'created' | 'updated' | 'current' | 'recreated'


def ensure_endpoint(gateway: StripeGateway, url: str, have_secret: bool) -> Registration:
    """One endpoint at `url` subscribing every handled type. An existing one is updated in
    place; it is recreated only when its signing secret is lost (Stripe never shows it again)."""
    existing = next((ep for ep in gateway.webhook_endpoints() if ep["url"] == url), None)
    if existing is not None and have_secret:
        if missing_types(existing["enabled_events"]):
            gateway.update_webhook_endpoint_events(existing["id"], list(HANDLED_EVENT_TYPES))
            return Registration(existing["id"], None, "updated")
        return Registration(existing["id"], None, "current")
    if existing is not None:
        gateway.delete_webhook_endpoint(existing["id"])
    endpoint_id, secret = gateway.register_webhook_endpoint(url, list(HANDLED_EVENT_TYPES))
    return Registration(endpoint_id, secret, "recreated" if existing is not None else "created")
