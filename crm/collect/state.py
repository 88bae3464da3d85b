"""What the Collect screen says, from the invoice's row: waiting, Processing (a bank payment on
its way), Declined (with the bank's reason), Paid ("Paid $345.00 · Visa •••• 4242 · 2:02 PM").
Pure: no I/O; the card label comes in from card.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from crm.money.amounts import format_cents

DECLINE_WORDS = {
    "insufficient_funds": "insufficient funds", "expired_card": "the card has expired",
    "incorrect_cvc": "the security code was wrong", "card_declined": "the card was declined",
    "generic_decline": "the bank declined it", "lost_card": "the card was reported lost",
    "stolen_card": "the card was reported stolen", "processing_error": "a processing error at the bank",
}


@dataclass(frozen=True)
class CollectState:
    kind: str  # 'waiting' | 'processing' | 'declined' | 'paid' | 'closed'
    headline: str
    detail: str = ""

    @property
    def final(self) -> bool:
        return self.kind in ("paid", "closed")


def _time(at: datetime | None, tz: str) -> str:
    if at is None:
        return ""
    return f"{at.astimezone(ZoneInfo(tz)):%I:%M %p}".lstrip("0")


def decline_reason(code: str | None, decline_code: str | None, message: str | None) -> str:
    return DECLINE_WORDS.get(decline_code or "") or DECLINE_WORDS.get(code or "") or (message or "no reason given")


def collect_state(view: dict[str, Any], tz: str, card: str | None = None) -> CollectState:
    currency = str(view["currency"])
    if view["status"] == "paid":
        paid = format_cents(int(view["amount_paid_cents"]), currency)
        parts = [f"Paid {paid}", card, _time(view["paid_at"] or view["last_payment_at"], tz)]
        return CollectState("paid", " · ".join(p for p in parts if p))
    if view["status"] in ("void", "uncollectible", "draft", "sending"):
        return CollectState("closed", f"This invoice is {view['status']}: nothing to collect.")
    due = format_cents(int(view["amount_remaining_cents"]), currency)
    if view["processing"]:
        return CollectState("processing", f"Processing · bank payment of {due} on its way",
                            "A bank debit takes a few business days; reminders are paused meanwhile.")
    failed_at = view["failed_at"]
    last_paid = view["last_payment_at"]
    if failed_at is not None and (last_paid is None or failed_at > last_paid):
        reason = decline_reason(view["decline_error_code"], view["decline_code"], view["decline_message"])
        return CollectState("declined", f"Declined · {reason}", f"at {_time(failed_at, tz)}: ask for another card, "
                                                                 "or text the link again.")
    if int(view["amount_paid_cents"]) > 0:
        return CollectState("waiting", f"{due} still due", f"{format_cents(int(view['amount_paid_cents']), currency)} "
                                                           "paid so far.")
    return CollectState("waiting", f"Waiting for payment · {due}")
