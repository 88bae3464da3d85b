"""What webhooks do not carry, fetched from Stripe off the hot path: fees and net, the
payment intents of payments whose InvoicePayment event never arrived, and decline reasons.

One pass (the sidecar's `payment-details` worker, and the reconciler's last step), for the
configured mode:

1. Payments recorded only under an event id (invoice.paid came, invoice_payment.paid did
   not): list the invoice's InvoicePayments and apply each as a synthetic
   `invoice_payment.paid` (`evt_reconcile_<inpay>_<status>`), which gives the payment its
   payment intent and re-applies the refunds that were waiting for it.
2. Fees: every payment with a payment intent or charge and no fee: its charge's balance
   transaction (`fee`, `net`, `available_on`). Not there yet (a charge still pending):
   retried with backoff until Stripe has it.
3. Refund fees: each succeeded refund's own balance transaction (negative amount).
4. Declines: an invoice whose `invoice.payment_failed` came without a reason recorded from
   `payment_intent.payment_failed`: its InvoicePayments link the payment intents (which
   re-applies a stored unmatched decline event), else the payment intent's
   `last_payment_error` is applied as a synthetic `payment_intent.payment_failed`.

Everything goes through crm.apply_stripe_event (audited, deduplicated by event id), never
through a second code path.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from crm.config.settings import load_settings
from crm.stripe.gateway import STRIPE_API_VERSION, StripeGateway, StripeGatewayError, as_json_object, stripe_target
from db import payment_details as q
from db.driver import Conn
from db.pool import worker_pool
from db.stripe_events import apply_event

log = logging.getLogger("crm.money.payment_details")

MAX_BACKOFF_S = 3600.0
MAX_DECLINE_LOOKUPS = 8


def backoff_s(attempts: int) -> float:
    """30 s, 60 s, 2 min ... at most an hour between tries."""
    return float(min(MAX_BACKOFF_S, 30.0 * 2 ** max(0, attempts)))


def synthetic_event(obj: dict[str, Any], event_type: str, event_id: str, mode: str, now: datetime) -> dict[str, Any]:
    """An event-shaped payload around an object fetched from Stripe, marked as ours."""
    return {
        "id": event_id, "object": "event", "type": event_type, "livemode": mode == "live",
        "created": int(now.timestamp()), "api_version": STRIPE_API_VERSION, "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None}, "data": {"object": obj}, "synthetic": "reconcile",
    }


def reconcile_event_id(*parts: object) -> str:
    """The one formula of a synthetic event's id: made of what it repairs, so a repeated
    repair is a duplicate in the ledger (and the ledger tells reconcile's events apart)."""
    return "evt_reconcile_" + "_".join(str(p) for p in parts)


def invoice_payment_event_id(inpay: dict[str, Any]) -> str:
    return reconcile_event_id(inpay["id"], inpay.get("status"))


def payment_failed_event_id(pi: dict[str, Any]) -> str:
    charge = (pi.get("last_payment_error") or {}).get("charge") or pi.get("latest_charge") or "nocharge"
    return reconcile_event_id(pi["id"], charge, "failed")


def apply_invoice_payments(conn: Conn, gateway: StripeGateway, stripe_invoice_id: str,
                           mode: str, now: datetime, source: str) -> list[dict[str, Any]]:
    """Applies every InvoicePayment of an invoice as a synthetic invoice_payment.paid; returns them."""
    inpays = [as_json_object(p) for p in gateway.list_invoice_payments(stripe_invoice_id)]
    for inpay in inpays:
        apply_event(conn, synthetic_event(inpay, "invoice_payment.paid", invoice_payment_event_id(inpay), mode, now),
                    mode, source=source)
    return inpays


def _charge_of(gateway: StripeGateway, row: dict[str, Any]) -> str | None:
    if row["stripe_charge_id"]:
        return str(row["stripe_charge_id"])
    pi = gateway.retrieve_payment_intent(str(row["stripe_payment_intent_id"]))
    latest = pi.get("latest_charge")
    return str(latest["id"] if isinstance(latest, dict) else latest) if latest else None


def fetch_payment_fees(conn: Conn, gateway: StripeGateway, mode: str) -> dict[str, int]:
    done = waiting = 0
    for row in q.claim_payments_without_fee(conn, mode):
        try:
            charge_id = _charge_of(gateway, row)
            charge = gateway.retrieve_charge(charge_id) if charge_id else {}
            txn_id = charge.get("balance_transaction")
            txn_id = txn_id.get("id") if isinstance(txn_id, dict) else txn_id
            if not charge_id or not txn_id:
                q.payment_fee_not_yet(conn, "payments", row["id"], "no balance transaction yet",
                                      backoff_s(row["fee_attempts"]))
                waiting += 1
                continue
            q.record_payment_fee(conn, row["id"], str(charge_id), gateway.retrieve_balance_transaction(str(txn_id)))
            done += 1
        except StripeGatewayError as exc:
            q.payment_fee_not_yet(conn, "payments", row["id"], str(exc), backoff_s(row["fee_attempts"]))
            waiting += 1
    return {"fees_recorded": done, "fees_waiting": waiting}


def fetch_refund_fees(conn: Conn, gateway: StripeGateway, mode: str) -> dict[str, int]:
    done = waiting = 0
    for row in q.claim_refunds_without_fee(conn, mode):
        try:
            txn_id = row["stripe_balance_transaction_id"] or gateway.retrieve_refund(
                str(row["stripe_refund_id"])).get("balance_transaction")
            if isinstance(txn_id, dict):
                txn_id = txn_id.get("id")
            if not txn_id:
                q.payment_fee_not_yet(conn, "refunds", row["id"], "no balance transaction yet",
                                      backoff_s(row["fee_attempts"]))
                waiting += 1
                continue
            q.record_refund_fee(conn, row["id"], gateway.retrieve_balance_transaction(str(txn_id)))
            done += 1
        except StripeGatewayError as exc:
            q.payment_fee_not_yet(conn, "refunds", row["id"], str(exc), backoff_s(row["fee_attempts"]))
            waiting += 1
    return {"refund_fees_recorded": done, "refund_fees_waiting": waiting}


def link_unlinked_payments(conn: Conn, gateway: StripeGateway, mode: str, now: datetime,
                           source: str, older_than_s: int = 60) -> int:
    linked = 0
    for row in q.invoices_with_unlinked_payments(conn, mode, older_than_s):
        try:
            apply_invoice_payments(conn, gateway, str(row["stripe_invoice_id"]), mode, now, source)
            linked += 1
        except StripeGatewayError as exc:
            log.warning("could not list invoice payments", extra={"fields": {"invoice_id": row["id"],
                                                                             "error": str(exc)}})
    return linked


def look_up_declines(conn: Conn, gateway: StripeGateway, mode: str, now: datetime,
                     source: str) -> int:
    found = 0
    for row in q.claim_decline_lookups(conn, mode):
        try:
            inpays = apply_invoice_payments(conn, gateway, str(row["stripe_invoice_id"]), mode, now, source)
            for inpay in inpays:
                intent = (inpay.get("payment") or {}).get("payment_intent")
                intent = intent.get("id") if isinstance(intent, dict) else intent
                if not intent or inpay.get("status") == "paid":
                    continue
                pi = as_json_object(gateway.retrieve_payment_intent(str(intent)))
                error = pi.get("last_payment_error")
                if not isinstance(error, dict):
                    continue
                charge = str(error.get("charge") or pi.get("latest_charge") or "")
                if not q.has_decline(conn, pi["id"], charge):
                    apply_event(conn, synthetic_event(pi, "payment_intent.payment_failed", payment_failed_event_id(pi),
                                                      mode, now), mode, source=source)
                found += 1
            q.decline_lookup_done(conn, row["id"])
        except StripeGatewayError as exc:
            retry = None if row["decline_lookup_attempts"] >= MAX_DECLINE_LOOKUPS else \
                now + timedelta(seconds=backoff_s(row["decline_lookup_attempts"]))
            q.decline_lookup_done(conn, row["id"], retry)
            log.warning("could not look up a decline", extra={"fields": {"invoice_id": row["id"], "error": str(exc)}})
    return found


def run_pass(conn: Conn, gateway: StripeGateway, mode: str, *, now: datetime | None = None,
             source: str = "worker", unlinked_older_than_s: int = 60) -> dict[str, int]:
    """One pass of everything above on an autocommit connection; returns counts."""
    now = now or datetime.now(UTC)
    counts = {"payments_linked": link_unlinked_payments(conn, gateway, mode, now, source, unlinked_older_than_s)}
    counts |= fetch_payment_fees(conn, gateway, mode)
    counts |= fetch_refund_fees(conn, gateway, mode)
    counts["declines_found"] = look_up_declines(conn, gateway, mode, now, source)
    return counts


def payment_details_pass(gateway: StripeGateway | None = None) -> dict[str, int]:
    """The sidecar worker's pass: the configured mode, one connection of the workers' pool (in
    autocommit: each statement, crm.apply_stripe_event included, is its own transaction)."""
    with worker_pool().connection() as conn:
        conn.autocommit = True
        try:
            settings = load_settings(conn)
            gw = gateway or StripeGateway(stripe_target(settings))
            return run_pass(conn, gw, settings.stripe_mode)
        finally:
            conn.autocommit = False
