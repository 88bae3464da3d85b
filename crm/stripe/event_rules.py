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

_MONEY_FIELDS = ("amount_paid", "amount_due", "amount_remaining", "amount", "amount_refunded")


def invoice_status_may_move(current: str, target: str) -> bool:
    return target in INVOICE_STATUS_MOVES.get(current, frozenset())


def mode_of(livemode: bool) -> str:
    return "live" if livemode else "test"


def event_problem(event: Any) -> str | None:
    """Why a verified body is not an event we can record, or None when it is."""
    if not isinstance(event, dict):
        return "body is not a JSON object"
    if not isinstance(event.get("id"), str) or not EVENT_ID.match(event["id"]):
        return "event id missing or not an evt_ id"
    if not isinstance(event.get("type"), str) or not event["type"]:
        return "event type missing"
    if not isinstance(event.get("livemode"), bool):
        return "livemode missing"
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "data.object missing"
    obj = data["object"]
    for name in _MONEY_FIELDS:
        value = obj.get(name)
        # Cents are whole numbers; bool is an int in Python and is no amount.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            return f"data.object.{name} is not a whole number of cents"
    return None
