"""How an invoice is paid at Stripe: the payment methods the CRM's invoices offer on the
hosted page, the capability each one needs (what go-live checks the account has), and the
invoice's default payment (the payment intent every attempt on the hosted page reuses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# What the customer may pay with on Stripe's hosted page: card, and bank debits (ACH).
PAYMENT_METHOD_TYPES = ("card", "us_bank_account")

CAPABILITY_OF = {"card": "card_payments", "us_bank_account": "us_bank_account_ach_payments"}
SHOWN_AS = {"card": "cards", "us_bank_account": "bank debits (ACH Direct Debit)"}


@dataclass(frozen=True)
class MissingCapability:
    method: str
    capability: str
    status: str  # Stripe's: inactive, pending, or "missing" when the account does not list it

    def describe(self) -> str:
        return f"{SHOWN_AS.get(self.method, self.method)} need {self.capability} ({self.status})"


def missing_capabilities(capabilities: Mapping[str, str] | None,
                         offered: tuple[str, ...] = PAYMENT_METHOD_TYPES) -> list[MissingCapability]:
    """The offered methods whose capability is not active on the account (Stripe refuses an
    invoice offering them). An account object without a capabilities map tells nothing: []."""
    if not capabilities:
        return []
    out = []
    for method in offered:
        needed = CAPABILITY_OF.get(method)
        if needed and capabilities.get(needed) != "active":
            out.append(MissingCapability(method, needed, capabilities.get(needed) or "missing"))
    return out


def default_payment(invoice_payments: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(payment intent id, invoice payment id) of the invoice's default payment, if it has one
    (an invoice finalized with nothing due has none)."""
    for p in invoice_payments:
        payment = p.get("payment") or {}
        if p.get("is_default") and payment.get("type") == "payment_intent" and payment.get("payment_intent"):
            return str(payment["payment_intent"]), str(p["id"])
    return None
