"""The sidecar's payment details worker: Stripe fees and net from balance transactions,
payments' missing payment intents, and decline reasons (crm/money/payment_details.py), one pass
per period (PAYMENT_DETAILS_INTERVAL_S, 30 s by default). Never on the webhook's path:
the route records what the event says and answers; this fetches what it does not say.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from db.config import env_int


def payment_details_pass() -> dict[str, Any]:
    from crm.money.payment_details import payment_details_pass as one_pass

    return dict(one_pass())


PAYMENT_DETAILS_WORKER: tuple[str, float, Callable[[], Any]] = (
    "payment-details", float(env_int("PAYMENT_DETAILS_INTERVAL_S", 30)), payment_details_pass)
