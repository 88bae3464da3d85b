"""Builders for Stripe objects in the shapes of the current API version.

Field sets follow Stripe's own example objects for API 2026-10-28 (invoices carry
no ``charge``/``payment_intent``/``paid``; payments are InvoicePayment objects).
Builders are pure: they take values and return dicts; storing them is the
caller's job.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox import ids
from sandbox.state import Obj

EMBEDDED_LINES = 10  # Stripe embeds the first 10 invoice lines; the rest are paged.


def stripe_fee(amount: int) -> int:
    """US card pricing, 2.9% + 30c, rounded half up in integer cents (no floats)."""
    return (amount * 29 + 500) // 1000 + 30


def public(obj: Any) -> Any:
    """A deep copy without the sandbox's private ``_`` keys."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return copy.copy(obj)


def _address(src: Any) -> Obj | None:
    if not isinstance(src, dict):
        return None
    return {k: src.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def customer(livemode: bool, now: int, p: Obj) -> Obj:
    return {
        "id": ids.stripe_id("cus", 14),
        "object": "customer",
        "address": _address(p.get("address")),
        "balance": int(p.get("balance") or 0),
        "created": now,
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": p.get("description"),
        "discount": None,
        "email": p.get("email"),
        "invoice_prefix": ids.invoice_prefix(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": livemode,
        "metadata": dict(p.get("metadata") or {}),
        "name": p.get("name"),
        "next_invoice_sequence": 1,
        "phone": p.get("phone"),
        "preferred_locales": list(p.get("preferred_locales") or []),
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def invoice(livemode: bool, now: int, cust: Obj, p: Obj, account_name: str) -> Obj:
    collection = p.get("collection_method", "charge_automatically")
    return {
        "id": ids.stripe_id("in"),
        "object": "invoice",
        "account_country": "US",
        "account_name": account_name,
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": p.get("auto_advance", collection == "charge_automatically"),
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                          "provider": None, "status": None},
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": collection,
        "created": now,
        "currency": p.get("currency") or "usd",
        "custom_fields": None,
        "customer": cust["id"],
        "customer_account": None,
        "customer_address": cust.get("address"),
        "customer_email": cust.get("email"),
        "customer_name": cust.get("name"),
        "customer_phone": cust.get("phone"),
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": p.get("description"),
        "discounts": [],
        "due_date": p.get("due_date"),
        "effective_at": None,
        "ending_balance": None,
        "footer": p.get("footer"),
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [], "has_more": False, "url": ""},
        "livemode": livemode,
        "metadata": dict(p.get("metadata") or {}),
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": p.get("statement_descriptor"),
        "status": "draft",
        "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                               "paid_at": None, "voided_at": None},
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
        "_line_ids": [],
        "_days_until_due": p.get("days_until_due"),
    }


def line_item(livemode: bool, now: int, invoice_id: str, currency: str, p: Obj) -> Obj:
    quantity = int(p.get("quantity", 1))
    price_data = p.get("price_data") or {}
    if "amount" in p and not price_data:
        unit_amount = None
        amount = int(p["amount"])
    else:
        unit_amount = int(price_data.get("unit_amount", 0))
        amount = unit_amount * quantity
    product_name = (price_data.get("product_data") or {}).get("name")
    period = p.get("period") or {}
    return {
        "id": ids.stripe_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": p.get("description") or product_name,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": livemode,
        "metadata": dict(p.get("metadata") or {}),
        "parent": {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": ids.stripe_id("ii"),
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
        },
        "period": {"start": int(period.get("start", now)), "end": int(period.get("end", now))},
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": ids.stripe_id("price"), "product": ids.stripe_id("prod", 14)},
            "unit_amount_decimal": str(unit_amount if unit_amount is not None else amount),
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": None,
        "subtotal": amount,
        "taxes": [],
        "_product_name": product_name,
    }


def payment_intent(livemode: bool, now: int, inv: Obj, amount: int) -> Obj:
    pi_id = ids.stripe_id("pi")
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{ids.stripe_id('s', 20)[2:]}",
        "confirmation_method": "automatic",
        "created": now,
        "currency": inv["currency"],
        "customer": inv["customer"],
        "customer_account": None,
        # Stripe writes its own text here; nothing should rely on it naming the invoice.
        "description": "Payment for Invoice",
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": livemode,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": ids.stripe_id("pm"),
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": inv.get("customer_email"),
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def _card_details(last4: str) -> Obj:
    return {
        "card": {
            "amount_authorized": None, "authorization_code": None, "brand": "visa",
            "checks": {"address_line1_check": None, "address_postal_code_check": None,
                       "cvc_check": "pass"},
            "country": "US", "exp_month": 12, "exp_year": 2034,
            "extended_authorization": {"status": "disabled"},
            "fingerprint": "SandboxFngrprnt0", "funding": "credit",
            "incremental_authorization": {"status": "unavailable"}, "installments": None,
            "last4": last4, "mandate": None, "multicapture": {"status": "unavailable"},
            "network": "visa", "network_token": {"used": False},
            "network_transaction_id": None,
            "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},
            "regulated_status": "unregulated", "three_d_secure": None, "wallet": None,
        },
        "type": "card",
    }


def charge(livemode: bool, now: int, pi: Obj, *, succeeded: bool, last4: str,
           txn_id: str | None, receipt_url: str, decline_code: str | None = None) -> Obj:
    ch_id = ids.stripe_id("ch")
    outcome = (
        {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
         "network_status": "approved_by_network", "reason": None, "risk_level": "normal",
         "seller_message": "Payment complete.", "type": "authorized"}
        if succeeded else
        {"advice_code": "try_again_later", "network_advice_code": None,
         "network_decline_code": None, "network_status": "declined_by_network",
         "reason": decline_code or "generic_decline", "risk_level": "normal",
         "seller_message": "The bank did not return any further details with this decline.",
         "type": "issuer_declined"}
    )
    return {
        "id": ch_id,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": pi["amount"] if succeeded else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": txn_id,
        "billing_details": {"address": _address({}), "email": pi.get("receipt_email"),
                            "name": None, "phone": None, "tax_id": None},
        "calculated_statement_descriptor": "SANDBOX",
        "captured": succeeded,
        "created": now,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None if succeeded else "card_declined",
        "failure_message": None if succeeded else "Your card was declined.",
        "fraud_details": {},
        "livemode": livemode,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": outcome,
        "paid": succeeded,
        "payment_intent": pi["id"],
        "payment_method": pi["payment_method"],
        "payment_method_details": _card_details(last4),
        "receipt_email": pi.get("receipt_email"),
        "receipt_number": None,
        "receipt_url": receipt_url.replace("{id}", ch_id),
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded" if succeeded else "failed",
        "transfer_data": None,
        "transfer_group": None,
    }


def balance_transaction(now: int, *, amount: int, fee: int, currency: str, source: str,
                        kind: str, description: str | None) -> Obj:
    fee_details = (
        [{"amount": fee, "application": None, "currency": currency,
          "description": "Stripe processing fees", "type": "stripe_fee"}] if fee else []
    )
    return {
        "id": ids.stripe_id("txn"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": now + 2 * 86400,
        "balance_type": "payments",
        "created": now,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": kind,
        "source": source,
        "status": "pending",
        "type": kind,
    }


def invoice_payment(livemode: bool, now: int, inv: Obj, pi: Obj, amount: int, *, paid: bool = False) -> Obj:
    """An invoice's payment attempt: `open` until its payment intent succeeds (then `paid`)."""
    return {
        "id": ids.stripe_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": amount if paid else None,
        "amount_requested": amount,
        "created": now,
        "currency": inv["currency"],
        "invoice": inv["id"],
        "is_default": True,
        "livemode": livemode,
        "payment": {"type": "payment_intent", "payment_intent": pi["id"]},
        "status": "paid" if paid else "open",
        "status_transitions": {"canceled_at": None, "paid_at": now if paid else None},
    }


def refund(now: int, ch: Obj, amount: int, p: Obj) -> Obj:
    return {
        "id": ids.stripe_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": ch["id"],
        "created": now,
        "currency": ch["currency"],
        "customer": ch.get("customer"),
        "customer_account": None,
        "destination_details": {
            "card": {"reference": None, "reference_status": "pending",
                     "reference_type": "acquirer_reference_number", "type": "refund"},
            "type": "card",
        },
        "metadata": dict(p.get("metadata") or {}),
        "payment_intent": ch.get("payment_intent"),
        "payment_method": ch.get("payment_method"),
        "reason": p.get("reason"),
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "pending",
        "transfer_reversal": None,
    }


def webhook_endpoint(livemode: bool, now: int, p: Obj) -> Obj:
    return {
        "id": ids.stripe_id("we"),
        "object": "webhook_endpoint",
        "api_version": p.get("api_version"),
        "application": None,
        "created": now,
        "description": p.get("description"),
        "enabled_events": list(p.get("enabled_events") or []),
        "livemode": livemode,
        "metadata": dict(p.get("metadata") or {}),
        "status": "enabled",
        "url": p["url"],
        "_secret": ids.stripe_webhook_secret(),
    }


def event(livemode: bool, now: int, api_version: str, etype: str, obj: Obj,
          previous: Obj | None, request: Obj) -> Obj:
    data: Obj = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": ids.stripe_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": now,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 0,
        "request": request,
        "type": etype,
    }
