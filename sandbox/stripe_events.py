"""Stripe events: recording each state change as an ``event`` and fanning it out.

Events are stored per mode (listable through ``/v1/events`` whether or not any
delivery succeeded) and handed to the deliverer for every webhook endpoint of
the same mode whose ``enabled_events`` match.
"""

from __future__ import annotations

import copy

from sandbox import stripe_objects as so
from sandbox.context import Sandbox, StripeCtx
from sandbox.state import Obj
from sandbox.webhook_delivery import Target


def type_matches(pattern: str, etype: str) -> bool:
    """Stripe patterns: ``*`` for all, ``invoice.*`` for a family, or an exact type."""
    if pattern == "*" or pattern == etype:
        return True
    return pattern.endswith(".*") and etype.startswith(pattern[:-1])


def emit(sb: Sandbox, ctx: StripeCtx, etype: str, obj: Obj, previous: Obj | None = None) -> Obj:
    """Record an event whose ``data.object`` is a snapshot of ``obj`` now, and deliver it."""
    store = sb.store
    evt = so.event(ctx.livemode, store.now(), sb.settings.stripe_api_version, etype,
                   copy.deepcopy(obj), previous, ctx.event_request())
    evt["_seq"] = store.next_seq()
    store.coll(ctx.mode, "event")[evt["id"]] = evt
    endpoints = [
        ep for ep in store.coll(ctx.mode, "webhook_endpoint").values()
        if ep["status"] == "enabled" and any(type_matches(p, etype) for p in ep["enabled_events"])
    ]
    evt["pending_webhooks"] = len(endpoints)
    for ep in endpoints:
        payload = so.public(evt)
        if ep.get("api_version"):
            payload["api_version"] = ep["api_version"]

        def delivered(evt: Obj = evt) -> None:
            evt["pending_webhooks"] = max(0, evt["pending_webhooks"] - 1)

        sb.deliverer.submit(Target("stripe", ep["id"], ep["url"], ep["_secret"]),
                            evt["id"], etype, payload, delivered)
    return evt


def redeliver(sb: Sandbox, mode: str, event_id: str, endpoint_id: str | None = None) -> int:
    """Send an existing event again (a manual 'resend' from the dashboard)."""
    evt = sb.store.coll(mode, "event").get(event_id)
    if evt is None:
        return 0
    count = 0
    for ep in sb.store.coll(mode, "webhook_endpoint").values():
        if endpoint_id and ep["id"] != endpoint_id:
            continue
        if not any(type_matches(p, evt["type"]) for p in ep["enabled_events"]):
            continue
        sb.deliverer.submit(Target("stripe", ep["id"], ep["url"], ep["_secret"]),
                            evt["id"], evt["type"], so.public(evt))
        count += 1
    return count
