"""Webhook health, per mode: is Stripe reaching the sidecar?

From Stripe: the endpoint's status (enabled or disabled: Stripe disables an endpoint after days of
failed deliveries), its enabled events and the handled types it misses, and how many recent
events still have `pending_webhooks` (Stripe is retrying them). From the ledger: deliveries
received in the last 24 h, the last event not applied, and the missed deliveries: events
reconcile found that never arrived by webhook. `warnings` says in plain words what is wrong;
`emergency` is a disabled endpoint of a mode in use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from crm.config.settings import Settings
from crm.stripe.endpoint import EndpointState, endpoint_state
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target
from db import webhook_health as queries
from db.pool import Conn

PENDING_GRACE_S = 300  # an event younger than this may still be on its way


@dataclass
class ModeHealth:
    mode: str
    in_use: bool  # the configured mode, or one with an endpoint registered
    endpoint: EndpointState
    received_24h: int
    duplicates_24h: int
    missed_24h: int
    repairs_24h: int
    last_received: Any
    missed: list[dict[str, Any]]
    last_failure: dict[str, Any] | None
    pending_events: int | None  # None: not asked
    warnings: list[str] = field(default_factory=list)

    @property
    def emergency(self) -> bool:
        return self.endpoint.status == "disabled"


def _pending(settings: Settings, mode: str, now: float) -> int | None:
    try:
        gateway = StripeGateway(stripe_target(settings, mode), attempts=1, network_retries=0, timeout_s=5.0)
        events = gateway.recent_events(int(now) - 86_400)
    except StripeGatewayError:
        return None
    return sum(1 for e in events if int(e.get("pending_webhooks") or 0) > 0
               and int(e.get("created") or now) < now - PENDING_GRACE_S)


def warnings_for(h: ModeHealth) -> list[str]:
    """Plain words for what is wrong, most urgent first."""
    ep, out = h.endpoint, []
    if ep.status == "disabled":
        out.append(f"EMERGENCY: Stripe has DISABLED the {h.mode} webhook endpoint {ep.endpoint_id} after failing "
                   "to deliver to it. No payment reaches the CRM by webhook until it is re-enabled; reconcile "
                   "repairs invoices hourly meanwhile.")
    if ep.error:
        out.append(f"Could not ask Stripe about the {h.mode} endpoint: {ep.error}")
    elif not ep.registered and h.in_use:
        out.append(f"No {h.mode}-mode webhook endpoint is registered: Stripe sends the CRM nothing.")
    elif ep.registered and ep.missing_types:
        out.append(f"The {h.mode} endpoint is not subscribed to {', '.join(ep.missing_types)}: those events "
                   "arrive only through reconcile. Register it again (updated in place).")
    if h.missed_24h:
        out.append(f"Stripe is failing to reach the sidecar: reconcile found {h.missed_24h} {h.mode}-mode "
                   f"event{'s' if h.missed_24h != 1 else ''} in the last 24 h that never arrived by webhook.")
    if h.pending_events:
        out.append(f"Stripe has {h.pending_events} {h.mode}-mode event{'s' if h.pending_events != 1 else ''} from "
                   "the last 24 h it has not managed to deliver yet (it is retrying).")
    return out


def mode_health(conn: Conn, settings: Settings, mode: str, *, ask_stripe: bool = True,
                now: float | None = None) -> ModeHealth:
    now = time.time() if now is None else now
    endpoint = endpoint_state(settings, mode, fast=True) if ask_stripe else EndpointState(
        mode, stripe_target(settings, mode).sandboxed, stripe_target(settings, mode).describe(), error="not asked")
    counts = queries.delivery_counts(conn, mode)
    in_use = mode == settings.stripe_mode or endpoint.registered
    pending = _pending(settings, mode, now) if ask_stripe and endpoint.registered else None
    h = ModeHealth(mode=mode, in_use=in_use, endpoint=endpoint, received_24h=int(counts["received"]),
                   duplicates_24h=int(counts["duplicates"]), missed_24h=int(counts["missed"]),
                   repairs_24h=int(counts["repairs"]), last_received=counts["last_received"],
                   missed=queries.missed_deliveries(conn, mode), last_failure=queries.last_failure(conn, mode),
                   pending_events=pending)
    h.warnings = warnings_for(h)
    return h


def health(conn: Conn, settings: Settings, ask_stripe: bool = True) -> list[ModeHealth]:
    """Both modes, the configured one first."""
    modes = [settings.stripe_mode] + [m for m in ("test", "live") if m != settings.stripe_mode]
    return [mode_health(conn, settings, m, ask_stripe=ask_stripe) for m in modes]
