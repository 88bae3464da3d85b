"""Pure rules for Stripe events: which shapes we accept, status order.

The SQL function crm.apply_stripe_event applies events; these are the same rules in
Python, for the sidecar's input checks and for tests (a test holds the SQL function
crm.invoice_status_may_move to the table below).
"""

from __future__ import annotations

import re
from typing import Any

EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")

# Stripe's invoice machine as the CRM mirrors it: forward only; paid and void are final,
# an uncollectible invoice can still be paid or voided (Stripe allows both).
INVOICE_STATUS_MOVES: dict[str, frozenset[str]] = {
    "draft": frozenset({"open", "paid", "void", "uncollectible"}),
    "sending": frozenset({"open", "paid", "void", "uncollectible"}),
    "open": frozenset({"paid", "void", "uncollectible"}),
    "uncollectible": frozenset({"paid", "void"}),
    "paid": frozenset(),
    "void": frozenset(),
}


def invoice_status_may_move(current: str, target: str) -> bool:
    return target in INVOICE_STATUS_MOVES.get(current, frozenset())


def mode_of(livemode: bool) -> str:
    return "live" if livemode else "test"


def event_problem(event: Any) -> str | None:
    """Why a verified body cannot be recorded as an event at all (no ledger key, no mode), or None.

    What an event says beyond its envelope (a data.object that is not an object, an amount
    that is not whole cents, a connected account, a value the database refuses) is judged
    in Postgres (crm.stripe_event_refusal, crm.apply_stripe_event), which records the event
    as rejected with the reason: invariant 11.
    """
    if not isinstance(event, dict):
        return "body is not a JSON object"
    if not isinstance(event.get("id"), str) or not EVENT_ID.match(event["id"]):
        return "event id missing or not an evt_ id"
    if not isinstance(event.get("type"), str) or not event["type"]:
        return "event type missing"
    if not isinstance(event.get("livemode"), bool):
        return "livemode missing"
    return None
