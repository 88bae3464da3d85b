"""An invoice's refunds and, for owners, the Refund button: full or partial, with a reason.

The form carries a token (one per form shown, in the session): pressing Refund twice, or again
after a lost answer, asks Stripe with the same idempotency keys, so one refund is made. After a
refund the form gives way to its result until the owner asks for another refund (a new token).
Refunds show as Stripe reports them: pending, succeeded, or failed with Stripe's reason (a failed
refund no longer counts in Refunded).
"""

from __future__ import annotations

import secrets
from typing import Any

import streamlit as st

from crm.money.amounts import decimal_amount, parse_cents
from crm.money.refunds import REASONS, RefundRefused, refund_invoice
from crm.users.auth import Session
from db import queries_refunds as q
from db.pool import connection
from ui.plain import plain
from ui.widgets import clock, frame, money, table


def _press_key(invoice_id: int) -> str:
    return f"refund_press_{invoice_id}"


def _result_key(invoice_id: int) -> str:
    return f"refund_result_{invoice_id}"


def _status_text(row: dict[str, Any]) -> str:
    status = str(row["status"])
    if status in ("failed", "canceled"):
        return f"{status}: {row['failure_reason'] or 'no reason given'} (not counted)"
    if status == "refused":
        return f"refused by Stripe: {row['failure_reason'] or ''}"
    if status == "requested":
        return "asked of Stripe, waiting for its answer"
    return status


def render(invoice: dict[str, Any], session: Session) -> None:
    """The refunds list, and the Refund form for owners on an invoice paid through Stripe."""
    invoice_id = int(invoice["id"])
    with connection() as conn:
        refunds = q.invoice_refunds(conn, invoice_id)
        payments = q.refundable_payments(conn, invoice_id)
    if refunds:
        st.markdown("**Refunds**")
        table(frame([{**r, "amount": money(r["amount_cents"], r["currency"]), "state": _status_text(r)}
                     for r in refunds],
                    {"at": "When", "amount": "Amount", "state": "Status", "reason": "Reason",
                     "requested_by": "By", "stripe_refund_id": "Refund"}, clock().tz), key="invoice_refunds")
    if not payments or not session.is_owner:
        return
    left = sum(max(int(p["refundable_cents"]), 0) for p in payments)
    currency = str(invoice["currency"])
    result: dict[str, Any] | None = st.session_state.get(_result_key(invoice_id))
    if result is not None:
        (st.success if result["ok"] else st.error)(plain(result["message"]))  # may quote Stripe
        if st.button("Another refund", key=f"refund_again_{invoice_id}"):
            st.session_state.pop(_result_key(invoice_id), None)
            st.session_state.pop(_press_key(invoice_id), None)
            st.rerun()
        return
    if left <= 0:
        return
    press = st.session_state.setdefault(_press_key(invoice_id), secrets.token_hex(8))
    with st.expander("Refund", icon=":material/undo:"), st.form(f"refund_form_{invoice_id}"):
        amount_text = st.text_input(f"Amount ({currency.upper()}), at most {money(left, currency)}",
                                    value=decimal_amount(left, currency),
                                    key=f"refund_amount_{invoice_id}")
        reason = st.selectbox("Reason", list(REASONS), format_func=REASONS.__getitem__,
                              key=f"refund_reason_{invoice_id}")
        note = st.text_input("Note (kept in the CRM)", key=f"refund_note_{invoice_id}")
        pressed = st.form_submit_button("Refund", type="primary")
    if not pressed:
        return
    try:
        cents = parse_cents(amount_text, currency)
        outcome = refund_invoice(invoice_id, cents, reason, note, session, press)
    except (RefundRefused, ValueError) as exc:
        st.error(plain(exc))  # quotes what was typed
        return
    st.session_state[_result_key(invoice_id)] = {"ok": outcome.ok, "message": outcome.message}
    if not outcome.ok and not outcome.retryable:
        # Stripe refused this amount: a corrected form is a new request (a retry keeps the token).
        st.session_state.pop(_press_key(invoice_id), None)
    st.rerun()
