"""The invoice page's "Record cash or check" panel: amount, how it was paid, the check number.

It validates what was typed and calls crm/money/cash_payments.py, which records the payment at Stripe
(in part as a payment record, in full as paid out of band); the invoice shows it when Stripe's
webhook arrives.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from crm.money.amounts import MoneyError, decimal_amount, parse_cents
from crm.money.cash_payments import METHODS, record_cash_payment
from ui.plain import plain
from ui.session import Session


def panel(invoice: dict[str, Any], session: Session) -> None:
    """For an open or uncollectible invoice sent through Stripe; nothing otherwise."""
    if invoice["status"] not in ("open", "uncollectible") or not invoice.get("stripe_invoice_id"):
        return
    invoice_id, currency = int(invoice["id"]), str(invoice["currency"])
    remaining = int(invoice["amount_due_cents"]) - int(invoice["amount_paid_cents"])
    with st.popover("Record cash or check", icon=":material/payments:"):
        st.caption(f"Money received outside Stripe. {decimal_amount(remaining, currency)} is still owed; "
                   "the customer's pay link then asks only for the rest.")
        typed = st.text_input("Amount received", value=decimal_amount(remaining, currency),
                              key=f"cash_amt_{invoice_id}")
        method = st.radio("Paid by", METHODS, horizontal=True, key=f"cash_method_{invoice_id}")
        reference = st.text_input("Check number" if method == "check" else "Note (optional)",
                                  key=f"cash_ref_{invoice_id}", max_chars=100)
        if st.button("Record payment", key=f"cash_record_{invoice_id}", type="primary"):
            try:
                cents = parse_cents(typed, currency)
            except MoneyError as exc:
                st.error(f"Amount: {plain(exc)}")  # quotes what was typed
                return
            with st.spinner("Recording it at Stripe…"):
                outcome = record_cash_payment(invoice_id, cents, str(method), reference)
            if outcome.ok:
                st.session_state["_flash"] = ("success", plain(f"{outcome.message} (by {session.email})"))
                st.rerun()
            st.error(plain(outcome.message))  # may quote Stripe
