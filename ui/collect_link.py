"""The one call pages make to open the Collect screen for an invoice (pages/collect.py)."""

from __future__ import annotations

import streamlit as st


def collect_button(invoice_id: int) -> None:
    """'Collect now': the phone-first screen with the QR code, Text it and the live status."""
    if st.button("Collect now", key=f"collect_{invoice_id}", type="primary", icon=":material/qr_code_2:",
                 help="Show a QR code of the pay link, text it to the customer, and watch for the payment."):
        st.session_state["collect_invoice"] = invoice_id
        st.switch_page("pages/collect.py")
