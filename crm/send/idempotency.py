"""Deterministic idempotency keys for every Stripe and Resend write of a Send. Pure.

A key is the same every time the same request is retried (by the library, by our own
retry loop, or by a resumed Send after a crash), so Stripe and Resend replay the first
result instead of creating a second object. The installation id keeps two databases
that share one Stripe account from ever colliding; the generation starts a fresh set
after Stripe rejected a request and the invoice went back to draft.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _prefix(install_id: str, mode: str) -> str:
    return f"crm-{install_id}-{mode}"


def customer_digest(name: str, email: str) -> str:
    """What the Stripe customer is given (name and email), as a short hash."""
    return hashlib.sha256(json.dumps([name, email]).encode()).hexdigest()[:16]


def customer_key(install_id: str, mode: str, customer_id: int, digest: str) -> str:
    # Per customer, not per invoice: two invoices for one new customer share one cus_. The
    # data sent is part of the key: a customer whose email was corrected after a lost answer
    # is created anew (the old key would be "same key, different parameters" for 24 h).
    return f"{_prefix(install_id, mode)}-customer-{customer_id}-{digest}"


def customer_update_key(install_id: str, mode: str, customer_id: int, digest: str) -> str:
    return f"{customer_key(install_id, mode, customer_id, digest)}-update"


def invoice_key(install_id: str, mode: str, invoice_id: int, generation: int, step: str) -> str:
    """step: 'create', 'finalize' or 'void'."""
    return f"{_prefix(install_id, mode)}-invoice-{invoice_id}-g{generation}-{step}"


def lines_key(install_id: str, mode: str, invoice_id: int, generation: int, lines: list[dict[str, Any]]) -> str:
    # The content is part of the key: lines Stripe rejected may be fixed and sent again.
    digest = hashlib.sha256(json.dumps(lines, sort_keys=True).encode()).hexdigest()[:16]
    return f"{invoice_key(install_id, mode, invoice_id, generation, 'lines')}-{digest}"


def email_key(install_id: str, mode: str, invoice_id: int, seq: int) -> str:
    return f"{_prefix(install_id, mode)}-invoice-{invoice_id}-email-{seq}"
