"""How one invoice reads on the Invoices page: its title, its list row, the filters' label and
the list's column widths. Pure: no Streamlit calls, no queries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from crm.money.amounts import format_cents

# Five columns that fit a 390 px phone (356 px of grid) beside the row marker; on a wide screen
# they stretch. Long values end in "…" rather than pushing Status and Due off the screen.
LIST_COLUMN_WIDTHS: dict[str, Any] = {label: {"width": px} for label, px in
                                      (("Invoice", 72), ("Customer", 70), ("Amount", 66), ("Status", 58), ("Due", 56))}
_FILTER_DEFAULTS = {"inv_status": "all", "inv_customer": None, "inv_from": None, "inv_to": None, "inv_mode": "all"}


def filter_label(state: Mapping[str, Any], customer_names: Mapping[int, str]) -> str:
    """'Filters' or 'Filters: overdue · Aria Hall', so a narrowed list says so while folded."""
    parts: list[str] = []
    status = state.get("inv_status", "all")
    if status and status != "all":
        parts.append(str(status))
    customer = state.get("inv_customer")
    if customer is not None and customer in customer_names:
        parts.append(customer_names[customer])
    if state.get("inv_from") or state.get("inv_to"):
        parts.append(f"created {state.get('inv_from') or '…'} to {state.get('inv_to') or '…'}")
    mode = state.get("inv_mode", "all")
    if mode and mode != "all":
        parts.append(f"{mode} mode")
    return "Filters" + (": " + " · ".join(parts) if parts else "")


def money_or_blank(cents: Any, currency: str) -> str:
    return "" if cents is None else format_cents(int(cents), currency)


def short_day(day: date | None, today: date) -> str:
    """'Dec 16' this year, 'Jan 5 2027' another: narrow enough for a phone's Due column."""
    if day is None:
        return ""
    return f"{day:%b} {day.day}" if day.year == today.year else f"{day:%b} {day.day} {day.year}"


def list_row(r: Mapping[str, Any], today: date) -> dict[str, Any]:
    """One row of the invoice list; a draft with no lines yet shows 'no lines' rather than $0.00."""
    cur = str(r["currency"])
    empty_draft = r["status"] == "draft" and not r["amount_due_cents"]
    return {**r, "amount": "no lines" if empty_draft else money_or_blank(r["amount_due_cents"], cur),
            "paid": money_or_blank(r["amount_paid_cents"], cur),
            "remaining": money_or_blank(r["amount_remaining_cents"], cur),
            "refunded": money_or_blank(r["amount_refunded_cents"], cur) if r["amount_refunded_cents"] else "",
            "state": str(r["status"]) + (f" {r['days_overdue']}d" if r["days_overdue"] else "")
            + (f" · {r['refund_state']}" if r["refund_state"] else ""),
            "signal": " · ".join(x for x in (r["email_signal"], r["attention"]) if x),
            "due": short_day(r.get("due_date"), today)}


def invoice_title(invoice: Mapping[str, Any], status: str) -> str:
    """'Invoice #76 · draft' (no number yet), 'Invoice #3 · ACME-0003 · open'."""
    number = invoice.get("stripe_invoice_number")
    return f"Invoice #{invoice['id']} · {number} · {status}" if number else f"Invoice #{invoice['id']} · {status}"


def remaining_cents(invoice: Mapping[str, Any]) -> int:
    """What is still to be paid: a draft's whole amount, an open invoice's balance, else nothing."""
    if invoice["status"] in ("draft", "sending", "open"):
        return int(invoice["amount_remaining_cents"] or 0)
    return 0
