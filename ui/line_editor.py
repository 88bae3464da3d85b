"""The draft's line editor: a table of description, quantity and unit price.

Prices are a text column so no float ever carries money; crm.invoice_lines parses them in
the invoice's currency and totals in its integer minor units (¥5,000 is 5000, $5,000.00 is
500000), and nothing is saved while any row is wrong.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm.money.amounts import UnsupportedCurrency
from crm.money.amounts import currency as currency_info
from crm.records import edits
from crm.send.lines import parse_lines, price_text
from db.pool import connection
from db.queries_invoices import draft_lines
from ui.widgets import flash, money


def editor_key(invoice_id: int) -> str:
    return f"lines_{invoice_id}"


def price_help(currency: str) -> str:
    """The unit price column's hint, in the invoice's currency ('e.g. 149.00', 'e.g. 5000: whole units')."""
    try:
        info = currency_info(currency)
    except UnsupportedCurrency as exc:
        return str(exc)
    example = price_text(14900 if info.exponent else 5000, currency)
    whole = " (whole units, no decimals)" if info.digits == 0 else ""
    return f"In {currency.upper()}, e.g. {example}{whole}"


def render(invoice_id: int, currency: str, actor: str) -> None:
    with connection() as conn:
        stored = draft_lines(conn, invoice_id)
    frame = pd.DataFrame({
        "description": pd.Series([r["description"] for r in stored], dtype="object"),
        "quantity": pd.Series([r["quantity"] for r in stored], dtype="Int64"),
        "unit_price": pd.Series([price_text(r["unit_amount_cents"], currency) for r in stored], dtype="object"),
    })
    edited = st.data_editor(
        frame,
        key=editor_key(invoice_id),
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config={
            "description": st.column_config.TextColumn("Description", width="large"),
            "quantity": st.column_config.NumberColumn("Quantity", step=1, format="%d"),
            "unit_price": st.column_config.TextColumn("Unit price", help=price_help(currency)),
        },
    )
    parsed = parse_lines(edited.to_dict("records"), currency)
    if parsed.ok:
        st.markdown(f"**Total: {money(parsed.total_cents, currency)}** "
                    f"({len(parsed.lines)} line{'s' if len(parsed.lines) != 1 else ''})")
    if st.button("Save lines", key=f"save_lines_{invoice_id}"):
        if not parsed.ok:
            for message in parsed.errors:
                st.error(message)
            st.caption("Nothing was saved.")
            return
        try:
            edits.save_draft_lines(invoice_id, parsed.lines, parsed.total_cents, actor)
        except edits.NotADraft as exc:
            st.error(str(exc))
            return
        st.session_state.pop(editor_key(invoice_id), None)
        flash(f"Saved {len(parsed.lines)} lines, total {money(parsed.total_cents, currency)}.")
        st.rerun()
