"""Refunds as Stripe makes them: asynchronous, with the events Stripe sends for each step.

A refund is created ``pending`` (``refund.created``, and ``charge.refunded`` as the charge's
``amount_refunded`` counts it at once). It settles after a delay of sandbox time: a card
refund after ``settings.card_refund_delay_s`` (0: inside the request, as Stripe's test mode
does), a bank-debit (ACH) refund after ``settings.bank_refund_delay_s`` (days at Stripe). It
ends ``succeeded``, or ``failed``/``canceled`` with a ``failure_reason``: the charge's
``amount_refunded`` drops back and a ``failure_balance_transaction`` returns the money. Each
step emits ``refund.updated`` and ``charge.refund.updated``; a failure also ``refund.failed``.
A succeeded card refund can still fail later (Stripe's test card 4000000000005126), through
the control API (``settle``). ``settings.refunds_fail`` makes settlements fail.
"""

from __future__ import annotations

from sandbox import stripe_objects as so
from sandbox.context import Sandbox, StripeCtx
from sandbox.state import Obj
from sandbox.stripe_billing import _put, previous_attributes
from sandbox.stripe_errors import StripeError, missing, param_invalid
from sandbox.stripe_events import emit

BANK_METHOD = "us_bank_account"
OUTCOMES = ("succeeded", "failed", "canceled")
# Stripe's Refund.failure_reason values.
FAILURE_REASONS = ("charge_for_pending_refund_disputed", "declined", "expired_or_canceled_card",
                   "insufficient_funds", "lost_or_stolen_card", "merchant_request", "unknown")


def _refundable_charge(sb: Sandbox, ctx: StripeCtx, p: Obj) -> Obj:
    store = sb.store
    if bool(p.get("charge")) == bool(p.get("payment_intent")):
        raise StripeError("You must pass exactly one of `charge` or `payment_intent`.",
                          code="parameter_missing", param="charge")
    if p.get("payment_intent"):
        pi = store.coll(ctx.mode, "payment_intent").get(p["payment_intent"])
        if pi is None:
            raise missing("payment_intent", p["payment_intent"], "payment_intent", 400)
        if pi["status"] != "succeeded" or not pi["latest_charge"]:
            raise StripeError(f"This PaymentIntent ({pi['id']}) does not have a successful "
                              "charge to refund.", param="payment_intent")
        ch_id = pi["latest_charge"]
    else:
        ch_id = p["charge"]
    ch = store.coll(ctx.mode, "charge").get(ch_id)
    if ch is None:
        raise missing("charge", ch_id, "charge", 400)
    if ch["status"] != "succeeded":
        raise StripeError(f"Charge {ch_id} has not succeeded and cannot be refunded.", param="charge")
    if ch.get("disputed"):
        raise StripeError(f"Charge {ch_id} has been charged back; it cannot be refunded.",
                          code="charge_disputed")
    return ch


def _is_bank(ch: Obj) -> bool:
    return bool((ch.get("payment_method_details") or {}).get("type") == BANK_METHOD)


def create_refund(sb: Sandbox, ctx: StripeCtx, p: Obj) -> Obj:
    """POST /v1/refunds: a pending refund, settled now (card, no delay) or by the ticker."""
    ch = _refundable_charge(sb, ctx, p)
    unrefunded = ch["amount"] - ch["amount_refunded"]
    if unrefunded == 0:
        raise StripeError(f"Charge {ch['id']} has already been refunded.", code="charge_already_refunded")
    amount = p.get("amount", unrefunded)
    if amount < 1:
        raise param_invalid("amount", "Invalid positive integer", "parameter_invalid_integer")
    if amount > unrefunded:
        raise StripeError(f"Refund amount ({amount}) is greater than unrefunded amount on "
                          f"charge ({unrefunded})", param="amount", code="amount_too_large")
    now = sb.store.now()
    re = so.refund(now, ch, amount, p)
    bank = _is_bank(ch)
    if bank:
        re["destination_details"] = {"type": "us_bank_transfer",
                                     "us_bank_transfer": {"reference": None, "reference_status": "pending"}}
    re["pending_reason"] = "processing"
    txn = _put(sb, ctx, "balance_transaction", so.balance_transaction(
        now, amount=-amount, fee=0, currency=ch["currency"], source=re["id"], kind="refund",
        description="REFUND FOR CHARGE"))
    re["balance_transaction"] = txn["id"]
    delay = float(sb.settings.bank_refund_delay_s if bank else sb.settings.card_refund_delay_s)
    re["_settle_at"] = now + delay
    _put(sb, ctx, "refund", re)
    emit(sb, ctx, "refund.created", so.public(re))
    before = so.public(ch)
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] == ch["amount"]
    # Since API 2022-11-15 a charge carries no `refunds` list (only when expanded, and
    # webhook payloads are never expanded): charge.refunded says only amount_refunded.
    emit(sb, ctx, "charge.refunded", so.public(ch), previous_attributes(before, so.public(ch)))
    if delay <= 0:
        settle(sb, ctx, re)
    return re


def settle(sb: Sandbox, ctx: StripeCtx, re: Obj, outcome: str | None = None,
           failure_reason: str | None = None) -> Obj:
    """The refund reaches its end: succeeded, or failed/canceled (the money comes back).
    ``outcome=None`` follows ``settings.refunds_fail``."""
    outcome = outcome or ("failed" if sb.settings.refunds_fail else "succeeded")
    if outcome not in OUTCOMES:
        raise param_invalid("outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
    movable = ("pending", "requires_action") + (("succeeded",) if outcome == "failed" else ())
    if re["status"] not in movable:
        raise StripeError(f"Refund {re['id']} is {re['status']}; it cannot become {outcome}.",
                          code="refund_unexpected_state")
    reason = failure_reason or sb.settings.refund_failure_reason
    if outcome != "succeeded" and reason not in FAILURE_REASONS:
        raise param_invalid("failure_reason", f"Invalid failure_reason: {reason}")
    store = sb.store
    now = store.now()
    re.pop("_settle_at", None)
    prev = so.public(re)
    re.pop("pending_reason", None)
    re["status"] = outcome
    details = re["destination_details"]
    ref = details.get(details["type"])
    if outcome == "succeeded":
        if isinstance(ref, dict):
            ref.update(reference="SANDBOX" + re["id"][-8:], reference_status="available")
    else:
        if isinstance(ref, dict):
            ref["reference_status"] = "unavailable"
        ch = store.coll(ctx.mode, "charge")[re["charge"]]
        back = _put(sb, ctx, "balance_transaction", so.balance_transaction(
            now, amount=re["amount"], fee=0, currency=re["currency"], source=re["id"], kind="refund_failure",
            description="REFUND FAILURE"))
        re.update(failure_reason=reason, failure_balance_transaction=back["id"])
        ch["amount_refunded"] -= re["amount"]
        ch["refunded"] = False
    after = so.public(re)
    changed = previous_attributes(prev, after)
    if outcome == "failed":
        emit(sb, ctx, "refund.failed", after)
    emit(sb, ctx, "refund.updated", after, changed)
    emit(sb, ctx, "charge.refund.updated", after, changed)
    return re


def tick(sb: Sandbox) -> int:
    """Settle the refunds whose delay has passed; how many."""
    now = sb.store.now()
    due = [(mode, re) for mode in ("test", "live") for re in sb.store.coll(mode, "refund").values()
           if re["status"] == "pending" and re.get("_settle_at") is not None and re["_settle_at"] <= now]
    for mode, re in sorted(due, key=lambda d: d[1]["_seq"]):
        settle(sb, StripeCtx(mode=mode, base_url=""), re)
    if due:
        sb.store.save()
    return len(due)
