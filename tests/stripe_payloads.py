"""Signed Stripe events in the current API shape (2026 'basil'+: invoices carry no charge
or payment_intent; payments are InvoicePayment objects), built field by field for tests.

Only the fields the CRM reads plus the identifying ones are filled in; everything else a
real payload carries is irrelevant to the sidecar and left out on purpose.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any

import stripe

API_VERSION = "2026-10-28.endive"
_seq = itertools.count(1)

Obj = dict[str, Any]


def stripe_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def invoice(stripe_invoice_id: str, *, status: str = "open", amount_due: int = 10_000, amount_paid: int = 0,
            livemode: bool = False, crm_invoice_id: int | None = None, crm_job_id: int | None = None,
            number: str | None = None, hosted_invoice_url: str | None = None, invoice_pdf: str | None = None,
            paid_at: int | None = None, attempt_count: int = 0) -> Obj:
    metadata = {}
    if crm_invoice_id is not None:
        metadata["crm_invoice_id"] = str(crm_invoice_id)
    if crm_job_id is not None:
        metadata["crm_job_id"] = str(crm_job_id)
    return {
        "id": stripe_invoice_id,
        "object": "invoice",
        "amount_due": amount_due,
        "amount_paid": amount_paid,
        "amount_remaining": amount_due - amount_paid,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "collection_method": "send_invoice",
        "currency": "usd",
        "customer": "cus_" + stripe_invoice_id[3:15],
        "hosted_invoice_url": hosted_invoice_url,
        "invoice_pdf": invoice_pdf,
        "livemode": livemode,
        "metadata": metadata,
        "number": number,
        "status": status,
        "status_transitions": {
            "finalized_at": None if status == "draft" else 1_700_000_000,
            "marked_uncollectible_at": None,
            "paid_at": paid_at if paid_at is not None else (1_700_000_100 if status == "paid" else None),
            "voided_at": 1_700_000_200 if status == "void" else None,
        },
        "total": amount_due,
    }


def invoice_payment(stripe_invoice_id: str, payment_intent: str, amount: int, *, livemode: bool = False) -> Obj:
    return {
        "id": stripe_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": amount,
        "amount_requested": amount,
        "created": 1_700_000_050,
        "currency": "usd",
        "invoice": stripe_invoice_id,
        "is_default": True,
        "livemode": livemode,
        "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": 1_700_000_050},
    }


def refund(charge: str, payment_intent: str, amount: int, *, status: str = "succeeded",
           refund_id: str | None = None) -> Obj:
    return {
        "id": refund_id or stripe_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge,
        "created": 1_700_000_300,
        "currency": "usd",
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": "requested_by_customer",
        "status": status,
    }


def charge(charge_id: str, payment_intent: str, amount: int, amount_refunded: int,
           refunds: list[Obj] | None = None, *, livemode: bool = False) -> Obj:
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": amount_refunded,
        "balance_transaction": stripe_id("txn"),
        "currency": "usd",
        "livemode": livemode,
        "paid": True,
        "payment_intent": payment_intent,
        "refunded": amount_refunded == amount,
        "refunds": {"object": "list", "data": refunds or [], "has_more": False},
        "status": "succeeded",
    }


def event(event_type: str, obj: Obj, *, livemode: bool = False, event_id: str | None = None,
          created: int | None = None) -> Obj:
    return {
        "id": event_id or stripe_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created if created is not None else 1_700_000_000 + next(_seq),
        "data": {"object": obj},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def body_of(evt: Obj) -> bytes:
    return json.dumps(evt, separators=(",", ":")).encode()


def signature_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """What Stripe sends: t=<unix>,v1=<HMAC-SHA256 of "t.body">, via stripe-python's own signer."""
    ts = int(time.time()) if timestamp is None else timestamp
    header: str = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)
    return header
