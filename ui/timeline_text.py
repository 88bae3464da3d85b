"""An invoice's timeline in words: each fact from db.queries_invoices.invoice_timeline becomes
a sentence a business owner reads ("Payment of $345.00 received"), never an id or a raw code.

The Stripe events themselves, and every id, are `technical`: only an owner's details view shows
them. Pure: no Streamlit, no queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm.money.amounts import format_cents

_MOVES = {
    (None, "draft"): "Draft created",
    ("draft", "sending"): "Send started",
    ("sending", "open"): "Sent to the customer, with a pay link",
    ("sending", "draft"): "The send did not finish; back to draft",
    ("open", "paid"): "Paid in full",
    ("processing", "paid"): "Paid in full (the bank payment settled)",
    ("open", "void"): "Voided",
    ("draft", "void"): "Voided",
    ("open", "uncollectible"): "Marked uncollectible",
    ("uncollectible", "paid"): "Paid in full after being marked uncollectible",
}
_ACTORS = {"stripe_event": "Stripe", "resend_event": "Resend", "twilio_event": "Twilio", "system": "CRM"}


@dataclass(frozen=True)
class Entry:
    at: datetime
    what: str
    who: str
    ref: str
    technical: bool  # a Stripe event as such: an owner's details view only


def words(code: Any) -> str:
    """'product_not_received' -> 'product not received'."""
    return str(code or "").replace("_", " ").strip()


def _status(row: Mapping[str, Any], money: Any) -> str | None:
    detail = row["detail"] or {}
    old, new = row["from_status"], row["to_status"]
    if "lines" in detail and old == new:
        return f"Lines saved: {detail['lines']} line{'' if int(detail['lines']) == 1 else 's'}, " \
               f"{money(int(detail.get('total_cents') or 0))}"
    if "dispute" in detail:
        amount = money(int(detail.get("amount_cents") or 0))
        reason = words(detail.get("reason")) or "no reason given"
        if new == "dispute_lost":
            return f"Dispute lost: {amount} taken back"
        if old == "disputed" and new != "disputed":
            return f"Dispute closed ({words(detail.get('dispute_status'))}); the {amount} stays paid"
        state = words(detail.get("dispute_status"))
        return f"The customer disputed {amount} with their bank (reason: {reason}; {state})"
    if "payment_error" in detail:
        return f"Payment failed: {detail['payment_error']}"
    if new == "processing":
        return f"A bank payment of {money(int(detail.get('amount_cents') or 0))} is on its way"
    if "refund_requested_cents" in detail:
        return (f"Refund of {money(int(detail['refund_requested_cents']))} asked of Stripe"
                + (f" ({words(detail.get('reason'))})" if detail.get("reason") else ""))
    if "credit_notes_cents" in detail:
        return f"Credit note: now due {money(int(detail.get('amount_due_cents') or 0))}"
    if "partial_payment_cents" in detail:
        return f"Partial payment of {money(int(detail['partial_payment_cents']))} received"
    if old == new:
        return None  # nothing moved: no line
    return _MOVES.get((old, new), f"Status changed from {words(old) or 'none'} to {words(new)}")


def describe(row: Mapping[str, Any], currency: str) -> Entry | None:
    """One fact as a sentence; None for a fact that says nothing to a reader."""
    def money(cents: int) -> str:
        return format_cents(cents, currency)

    kind, detail = row["kind"], row["detail"] or {}
    who = row["actor"] if row["actor_type"] == "user" else _ACTORS.get(row["actor_type"], "CRM")
    technical = False
    what: str | None
    if kind == "status":
        what = _status(row, money)
    elif kind == "payment":
        fee, net = detail.get("fee_cents"), detail.get("net_cents")
        if detail.get("method") == "out_of_band":
            return Entry(row["at"], f"Payment of {money(int(row['amount_cents']))} received outside Stripe "
                         "(cash or check)", "CRM", "", False)
        what = f"Payment of {money(int(row['amount_cents']))} received" + (
            f" (Stripe fee {money(int(fee))}, net {money(int(net))})" if fee is not None and net is not None
            else " (Stripe's fee not known yet)")
    elif kind == "email":
        what = f"{words(detail.get('kind')).capitalize()} email {words(row['to_status'])} to {detail.get('to')}"
    elif kind == "email_event":
        what = f"{words(detail.get('kind')).capitalize()} email {words(row['to_status'])}"
    elif kind in ("text", "text_event"):
        label = "Pay link" if detail.get("kind") == "pay_link" else words(detail.get("kind")).capitalize()
        what = f"{label} text {words(row['to_status'])}" + (f" to {detail['to']}" if detail.get("to") else "")
        if detail.get("error_code"):
            what += f" (error {detail['error_code']}" + (f": {detail['error']})" if detail.get("error") else ")")
        elif detail.get("error"):
            what += f": {detail['error']}"
    elif kind == "reminder":
        what = (f"Reminder {detail.get('sequence')} ({detail.get('offset_days')} days after due) "
                f"{words(row['to_status'])}" + (f": {words(detail['cancel_reason'])}"
                                                 if detail.get("cancel_reason") else ""))
    elif kind == "refund":
        what = f"Refund of {money(int(row['amount_cents'] or 0))} {words(row['to_status'])}" + (
            f": {detail['failure_reason']}, taken back out" if detail.get("failure_reason") else "")
    elif kind == "decline":
        code = words(detail.get("decline_code") or detail.get("code"))
        what = f"Payment declined: {detail.get('message') or 'no message'}" + (f" ({code})" if code else "")
    elif kind == "send_step":
        what = f"Sending stopped at '{words(detail.get('step'))}': {detail.get('error') or 'no detail'}"
    else:  # a Stripe event as such
        technical = True
        dupes = int(detail.get("duplicates") or 0)
        what = f"Stripe event {detail.get('type')}: {words(row['to_status'])}" + (
            f" (+{dupes} duplicate deliveries)" if dupes else "")
    if what is None:
        return None
    return Entry(row["at"], what, str(who or ""), str(row["ref"] or ""), technical)


def timeline(rows: Iterable[Mapping[str, Any]], currency: str, details: bool = False) -> list[Entry]:
    """The entries to show, oldest first; with `details` (an owner's view) the Stripe events too."""
    entries = (describe(r, currency) for r in rows)
    return [e for e in entries if e is not None and (details or not e.technical)]
