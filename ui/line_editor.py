"""The draft's line editor: a table of description, quantity and unit price.

Prices are a text column so no float ever carries money; crm.invoice_lines parses them in
the invoice's currency and totals in its integer minor units (¥5,000 is 5000, $5,000.00 is
500000), and nothing is saved while any row is wrong.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from babel.numbers import get_currency_symbol

from crm.money.amounts import UnsupportedCurrency
from crm.money.amounts import currency as currency_info
from crm.records import edits
from crm.send.lines import parse_lines, price_text
from db.pool import connection
from db.queries_invoices import draft_lines
from ui.plain import plain
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


def price_label(currency: str) -> str:
    """'Unit price ($)', 'Unit price (¥)': the sign the amounts are typed in."""
    try:
        sign = get_currency_symbol(currency.upper(), locale="en_US")
    except Exception:  # noqa: BLE001 - an unknown code shows as itself
        sign = currency.upper()
    return f"Unit price ({sign})"


def amounts_text(amounts: tuple[int | None, ...], currency: str) -> str:
    """'Line amounts: 1. $179.10 · 2. —': each row's quantity x price as it is typed."""
    return "Line amounts: " + " · ".join(f"{n}. {money(a, currency) if a is not None else '—'}"
                                         for n, a in enumerate(amounts, start=1))


def render(invoice_id: int, currency: str, actor: str) -> None:
    with connection() as conn:
        stored = draft_lines(conn, invoice_id)
    frame = pd.DataFrame({
        "description": pd.Series([r["description"] or "" for r in stored], dtype="object"),
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
            # Empty-text defaults, so a new row's cells are blank, never "None". No default quantity:
            # a row added by a stray click stays blank and is skipped, not an error.
            "description": st.column_config.TextColumn("Description", width="large", default=""),
            "quantity": st.column_config.NumberColumn("Quantity", step=1, format="%d", min_value=1),
            "unit_price": st.column_config.TextColumn(price_label(currency), help=price_help(currency), default=""),
        },
    )
    parsed = parse_lines(edited.to_dict("records"), currency)
    if parsed.row_amounts:
        st.caption(amounts_text(parsed.row_amounts, currency))
    if parsed.ok:
        st.markdown(f"**Total: {money(parsed.total_cents, currency)}** "
                    f"({len(parsed.lines)} line{'s' if len(parsed.lines) != 1 else ''})")
    elif parsed.row_amounts:
        # A running figure while a row is still being typed; Save says what is wrong.
        st.markdown(f"**Total so far: {money(parsed.running_total_cents, currency)}** (a line is incomplete)")
    if st.button("Save lines", key=f"save_lines_{invoice_id}"):
        if not parsed.ok:
            for message in parsed.errors:
                st.error(plain(message))  # quotes the typed price
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
