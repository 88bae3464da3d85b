"""Bank debits (ACH, ``us_bank_account``) and disputes, with the events Stripe sends for them.

A bank debit is ``processing`` until it settles: after ``settings.bank_settle_delay_s`` of
sandbox time (``tick`` runs on the sandbox's ticker), or at once through the control API;
``settings.bank_debits_fail`` makes the next settlements fail (insufficient funds).
A dispute is opened on an invoice's succeeded charge and closed won or lost through the
control API, in the shape of Stripe's own dispute object.
"""

from __future__ import annotations

from sandbox import ids
from sandbox import stripe_objects as so
from sandbox.context import Sandbox, StripeCtx
from sandbox.state import Obj
from sandbox.stripe_account import require_capabilities
from sandbox.stripe_billing import (
    _put,
    _require_payable,
    _snapshot,
    attempt_intent,
    previous_attributes,
    settle_payment,
)
from sandbox.stripe_errors import StripeError, param_invalid
from sandbox.stripe_events import emit

BANK_METHOD = "us_bank_account"
EVIDENCE_DAYS = 7
DISPUTE_FEE = 1500
DISPUTE_REASONS = ("bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
                   "debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details",
                   "insufficient_funds", "product_not_received", "product_unacceptable",
                   "subscription_canceled", "unrecognized")


def ach_fee(amount: int) -> int:
    """ACH Direct Debit pricing: 0.8%, capped at $5, in integer cents."""
    return min((amount * 8 + 500) // 1000, 500)


def offers_bank(inv: Obj) -> bool:
    return BANK_METHOD in ((inv.get("payment_settings") or {}).get("payment_method_types") or [])


def processing_debit(sb: Sandbox, mode: str, inv: Obj) -> Obj | None:
    pi_id = inv.get("_processing_pi")
    return sb.store.coll(mode, "payment_intent").get(pi_id) if pi_id else None


def _bank_details() -> Obj:
    return {"type": BANK_METHOD, BANK_METHOD: {
        "account_holder_type": "individual", "account_type": "checking", "bank_name": "STRIPE TEST BANK",
        "fingerprint": "SandboxBankFngr0", "last4": "6789", "mandate": None, "payment_reference": None,
        "routing_number": "110000000"}}


# ---------------------------------------------------------------- bank debits

def pay_by_bank(sb: Sandbox, ctx: StripeCtx, inv: Obj, amount: int | None = None) -> Obj:
    """Start a bank debit for all or part of the invoice; returns the processing PaymentIntent."""
    _require_payable(inv)
    if not offers_bank(inv):
        raise StripeError("This invoice does not accept us_bank_account payments "
                          "(payment_settings.payment_method_types).", param="payment_method_types")
    require_capabilities(sb, [BANK_METHOD], "payment_method_types")
    if processing_debit(sb, ctx.mode, inv) is not None:
        raise StripeError("A bank payment for this invoice is already processing.",
                          code="payment_intent_unexpected_state")
    remaining = inv["amount_remaining"]
    amount = remaining if amount is None else amount
    if amount < 1 or amount > remaining:
        raise param_invalid("amount", f"The amount must be between 1 and the amount remaining on the invoice "
                                      f"({remaining}).")
    now = sb.store.now()
    pi, _ = attempt_intent(sb, ctx, inv, amount, now)
    if BANK_METHOD not in pi["payment_method_types"]:
        pi["payment_method_types"] = [BANK_METHOD]
    pi["payment_method_options"] = {BANK_METHOD: {"verification_method": "automatic"}}
    ch = so.charge(ctx.livemode, now, pi, succeeded=False, last4="6789", txn_id=None,
                   receipt_url=f"{ctx.base_url}/receipts/{{id}}")
    ch.update(status="pending", failure_code=None, failure_message=None, payment_method_details=_bank_details(),
              outcome={"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                       "network_status": "approved_by_network", "reason": None, "risk_level": "not_assessed",
                       "seller_message": "Payment complete.", "type": "authorized"})
    _put(sb, ctx, "charge", ch)
    pi.update(status="processing", latest_charge=ch["id"])
    pi["_invoice"] = inv["id"]
    pi["_settle_at"] = now + int(sb.settings.bank_settle_delay_s)
    inv["_processing_pi"] = pi["id"]
    emit(sb, ctx, "charge.pending", so.public(ch))
    emit(sb, ctx, "payment_intent.processing", so.public(pi))
    return pi


def settle(sb: Sandbox, ctx: StripeCtx, pi: Obj, fail: bool | None = None) -> Obj:
    """The bank answered: the debit succeeded (the invoice gets the payment) or failed."""
    if pi.get("status") != "processing":
        raise StripeError(f"PaymentIntent {pi['id']} is not processing (status {pi.get('status')}).",
                          code="payment_intent_unexpected_state")
    store = sb.store
    now = store.now()
    inv = store.coll(ctx.mode, "invoice")[pi["_invoice"]]
    ch = store.coll(ctx.mode, "charge")[pi["latest_charge"]]
    inv.pop("_processing_pi", None)
    pi.pop("_settle_at", None)
    before = _snapshot(sb, ctx, inv)
    failed = sb.settings.bank_debits_fail if fail is None else fail
    if failed or inv["status"] not in ("open", "uncollectible"):
        ch.update(status="failed", failure_code="insufficient_funds",
                  failure_message="The customer's account has insufficient funds to cover this payment.")
        pi.update(status="requires_payment_method", last_payment_error={
            "charge": ch["id"], "code": "insufficient_funds",
            "message": "The customer's account has insufficient funds to cover this payment.",
            "payment_method": {"id": pi["payment_method"], "object": "payment_method", "type": BANK_METHOD},
            "type": "invalid_request_error"})
        inv["attempt_count"] += 1
        inv["attempted"] = True
        emit(sb, ctx, "charge.failed", so.public(ch))
        emit(sb, ctx, "payment_intent.payment_failed", so.public(pi))
        after = _snapshot(sb, ctx, inv)
        emit(sb, ctx, "invoice.payment_failed", after)
        emit(sb, ctx, "invoice.updated", after, previous_attributes(before, after))
        return pi
    amount = pi["amount"]
    inpay = store.coll(ctx.mode, "invoice_payment")[pi["_inpay"]]
    inpay.update(status="paid", amount_paid=amount)
    inpay["status_transitions"]["paid_at"] = now
    txn = _put(sb, ctx, "balance_transaction", so.balance_transaction(
        now, amount=amount, fee=ach_fee(amount), currency=inv["currency"], source=ch["id"], kind="charge",
        description=pi["description"]))
    ch.update(status="succeeded", paid=True, captured=True, amount_captured=amount, balance_transaction=txn["id"])
    pi.update(status="succeeded", amount_received=amount)
    settle_payment(sb, ctx, inv, before, ch, pi, inpay, amount, now)
    return pi


def tick(sb: Sandbox, base_url: str) -> int:
    """Settle the bank debits whose delay has passed; how many."""
    now = sb.store.now()
    due = [(mode, pi) for mode in ("test", "live") for pi in sb.store.coll(mode, "payment_intent").values()
           if pi.get("status") == "processing" and pi.get("_settle_at") is not None and pi["_settle_at"] <= now]
    for mode, pi in sorted(due, key=lambda d: d[1]["_seq"]):
        settle(sb, StripeCtx(mode=mode, base_url=base_url), pi)
    if due:
        sb.store.save()
    return len(due)


# ---------------------------------------------------------------- disputes

def disputable_charge(sb: Sandbox, mode: str, inv: Obj) -> Obj:
    """The invoice's latest succeeded charge (through its invoice payments)."""
    for pay in sorted((p for p in sb.store.coll(mode, "invoice_payment").values() if p["invoice"] == inv["id"]),
                      key=lambda p: p["_seq"], reverse=True):
        pi = sb.store.coll(mode, "payment_intent").get(pay["payment"].get("payment_intent") or "")
        ch = sb.store.coll(mode, "charge").get((pi or {}).get("latest_charge") or "")
        if ch is not None and ch["status"] == "succeeded":
            return ch
    raise StripeError(f"Invoice {inv['id']} has no succeeded charge to dispute.", param="invoice")


def open_dispute(sb: Sandbox, ctx: StripeCtx, ch: Obj, amount: int | None = None, reason: str = "fraudulent") -> Obj:
    if ch.get("disputed"):
        raise StripeError(f"Charge {ch['id']} is already disputed.", code="charge_disputed")
    if reason not in DISPUTE_REASONS:
        raise param_invalid("reason", f"Invalid dispute reason: {reason}")
    amount = ch["amount"] - ch["amount_refunded"] if amount is None else amount
    if amount < 1 or amount > ch["amount"] - ch["amount_refunded"]:
        raise param_invalid("amount", "A dispute is for at most the charge's unrefunded amount.")
    now = sb.store.now()
    method = ch["payment_method_details"]["type"]
    details: Obj = ({"card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4",
                              "network": "visa"}, "type": "card"}
                    if method == "card" else {"type": method})
    dp = {
        "id": ids.stripe_id("dp"), "object": "dispute", "amount": amount, "balance_transactions": [],
        "charge": ch["id"], "created": now, "currency": ch["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {k: None for k in (
            "access_activity_log", "billing_address", "cancellation_policy", "cancellation_policy_disclosure",
            "cancellation_rebuttal", "customer_communication", "customer_email_address", "customer_name",
            "customer_purchase_ip", "customer_signature", "duplicate_charge_documentation",
            "duplicate_charge_explanation", "duplicate_charge_id", "product_description", "receipt",
            "refund_policy", "refund_policy_disclosure", "refund_refusal_explanation", "service_date",
            "service_documentation", "shipping_address", "shipping_carrier", "shipping_date",
            "shipping_documentation", "shipping_tracking_number", "uncategorized_file", "uncategorized_text")}
        | {"enhanced_evidence": {}},
        "evidence_details": {"due_by": now + EVIDENCE_DAYS * 86400, "enhanced_eligibility": {},
                             "has_evidence": False, "past_due": False, "submission_count": 0},
        "is_charge_refundable": False, "livemode": ctx.livemode, "metadata": {},
        "payment_intent": ch.get("payment_intent"), "payment_method_details": details,
        "reason": reason, "status": "needs_response",
    }
    _put(sb, ctx, "dispute", dp)
    ch["disputed"] = True
    emit(sb, ctx, "charge.dispute.created", so.public(dp))
    _move_funds(sb, ctx, dp, -amount, DISPUTE_FEE, "charge.dispute.funds_withdrawn")
    return dp


def _move_funds(sb: Sandbox, ctx: StripeCtx, dp: Obj, amount: int, fee: int, etype: str) -> None:
    txn = _put(sb, ctx, "balance_transaction", so.balance_transaction(
        sb.store.now(), amount=amount, fee=fee, currency=dp["currency"], source=dp["id"], kind="adjustment",
        description=f"Chargeback {'withdrawal' if amount < 0 else 'reversal'} for {dp['charge']}"))
    dp["balance_transactions"].append(so.public(txn))
    emit(sb, ctx, etype, so.public(dp))


def submit_evidence(sb: Sandbox, ctx: StripeCtx, dp: Obj) -> Obj:
    if dp["status"] not in ("needs_response", "warning_needs_response"):
        raise StripeError(f"Dispute {dp['id']} is {dp['status']}; evidence cannot be submitted.")
    prev = so.public(dp)
    dp["status"] = "under_review" if dp["status"] == "needs_response" else "warning_under_review"
    dp["evidence_details"].update(has_evidence=True, submission_count=dp["evidence_details"]["submission_count"] + 1)
    emit(sb, ctx, "charge.dispute.updated", so.public(dp), previous_attributes(prev, so.public(dp)))
    return dp


def close_dispute(sb: Sandbox, ctx: StripeCtx, dp: Obj, outcome: str) -> Obj:
    if outcome not in ("won", "lost"):
        raise param_invalid("outcome", "outcome must be won or lost")
    if dp["status"] in ("won", "lost", "warning_closed", "prevented"):
        raise StripeError(f"Dispute {dp['id']} is already closed ({dp['status']}).")
    if outcome == "won":
        _move_funds(sb, ctx, dp, dp["amount"], 0, "charge.dispute.funds_reinstated")
    dp["status"] = outcome
    dp["is_charge_refundable"] = False
    emit(sb, ctx, "charge.dispute.closed", so.public(dp))
    return dp
