"""Signed Stripe `invoice.paid` events for the webhook bench, built the way Stripe sends them.

The current API shape (2026-10-28.endive: no charge or payment_intent on the invoice), the
fields the sidecar reads, signed with stripe-python's own signer (HMAC-SHA256 of "t.body").
10% of deliveries repeat an earlier one, as Stripe's at-least-once delivery does.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

import stripe

SECRET = "whsec_bench_0123456789abcdef"
DUPLICATE_SHARE = 0.10


@dataclass
class Delivery:
    """One POST: the event, its exact bytes and Stripe-Signature headers (signed when built,
    just before its phase, well inside the 300 s tolerance; keeps HMAC off the sender's clock)."""

    event: dict[str, Any]
    body: bytes
    headers: dict[str, str]


def paid_event(stripe_invoice_id: str, amount: int, n: int) -> dict[str, Any]:
    """An invoice.paid event in the current API shape (the fields the sidecar reads)."""
    now = int(time.time())
    return {
        "id": f"evt_benchpaid{n:09d}{random.getrandbits(32):08x}", "object": "event",
        "api_version": "2026-10-28.endive", "created": now, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": "invoice.paid",
        "data": {"object": {
            "id": stripe_invoice_id, "object": "invoice", "amount_due": amount, "amount_paid": amount,
            "amount_remaining": 0, "attempt_count": 1, "attempted": True, "collection_method": "send_invoice",
            "currency": "usd", "customer": "cus_bench", "livemode": False, "metadata": {}, "status": "paid",
            "status_transitions": {"finalized_at": now - 3600, "marked_uncollectible_at": None, "paid_at": now,
                                   "voided_at": None},
            "total": amount,
        }},
    }


def deliveries(invoices: list[tuple[str, int]], rng: random.Random) -> list[Delivery]:
    """One event per invoice plus 10% repeats, each repeat placed after its original."""

    out = []
    for n, (sid, amount) in enumerate(invoices):
        event = paid_event(sid, amount, n)
        body = json.dumps(event, separators=(",", ":")).encode()
        out.append(Delivery(event, body, signed_headers(body)))
    for _ in range(int(len(out) * DUPLICATE_SHARE)):
        i = rng.randrange(len(out))
        out.insert(rng.randrange(i + 1, len(out) + 1), out[i])
    return out


def signed_headers(body: bytes) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, int(time.time()))
    return {"Stripe-Signature": header, "Content-Type": "application/json"}
