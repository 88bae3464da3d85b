"""The card a payment was made with ('Visa •••• 4242'), asked of Stripe once per charge.

Stripe's charge has it (`payment_method_details.card`); the CRM does not store card details.
"""

from __future__ import annotations

import threading
from typing import Any

from crm.config.settings import Settings
from crm.stripe.gateway import StripeGateway, StripeGatewayError, stripe_target

_BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "Amex", "discover": "Discover",
           "diners": "Diners", "jcb": "JCB", "unionpay": "UnionPay"}
_cache: dict[str, str | None] = {}
_lock = threading.Lock()


def card_label(charge: dict[str, Any]) -> str | None:
    """'Visa •••• 4242', 'Bank account •••• 6789', or None. Pure."""
    details = charge.get("payment_method_details") or {}
    card = details.get("card") or {}
    if card.get("last4"):
        return f"{_BRANDS.get(str(card.get('brand')), str(card.get('brand') or 'Card').title())} •••• {card['last4']}"
    bank = details.get("us_bank_account") or {}
    if bank.get("last4"):
        return f"Bank account •••• {bank['last4']}"
    return None


def paid_with(settings: Settings, mode: str, charge_id: str | None, payment_intent_id: str | None) -> str | None:
    """The label for a payment's charge (found through its payment intent when the charge id is
    not recorded yet); None when Stripe cannot say now. Remembered per charge."""
    key = charge_id or payment_intent_id
    if not key:
        return None
    with _lock:
        if key in _cache:
            return _cache[key]
    gateway = StripeGateway(stripe_target(settings, mode))
    try:
        if not charge_id and payment_intent_id:
            charge_id = gateway.retrieve_payment_intent(payment_intent_id).get("latest_charge")
        label = card_label(gateway.retrieve_charge(str(charge_id))) if charge_id else None
    except StripeGatewayError:
        return None
    with _lock:
        _cache[key] = label
    return label
