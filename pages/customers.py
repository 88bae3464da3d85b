"""Customers: search and list with balances, create, edit (email validated), their jobs
and invoices, opt out of reminders."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm.validation import email_error, name_error, phone_error, text_error
from db import customers as c
from db.pool import connection
from ui.session import require_login
from ui.widgets import PAGE_SIZE, money, pager, show_flash

session = require_login()
st.title("Customers")
show_flash()


def customer_form(key: str, existing: dict | None = None) -> c.CustomerInput | None:
    """The create/edit form; returns clean input, or None (with messages under the fields)."""
    existing = existing or {}
    with st.form(key):
        name = st.text_input("Name", value=existing.get("name", ""), key=f"{key}_name")
        name_msg = st.empty()
        email = st.text_input("Email", value=existing.get("email") or "", key=f"{key}_email")
        email_msg = st.empty()
        phone = st.text_input("Phone", value=existing.get("phone") or "", key=f"{key}_phone")
        phone_msg = st.empty()
        address = st.text_area("Address", value=existing.get("address") or "", key=f"{key}_address")
        address_msg = st.empty()
        opt_out = st.checkbox("Opt out of payment reminders", value=bool(existing.get("reminders_opt_out")),
                              key=f"{key}_opt_out")
        submitted = st.form_submit_button("Save customer" if existing else "Create customer", type="primary")
    if not submitted:
        return None
    errors = {
        name_msg: name_error(name),
        email_msg: email_error(email, required=False),
        phone_msg: phone_error(phone),
        address_msg: text_error(address, "Address"),
    }
    for slot, message in errors.items():
        if message:
            slot.error(message)
    if any(errors.values()):
        st.caption("Nothing was saved.")
        return None
    return c.CustomerInput(name.strip(), email.strip() or None, phone.strip() or None, address.strip() or None,
                           opt_out)


search = st.text_input("Search by name or email", key="cust_search")
with connection() as conn:
    total = c.count_customers(conn, search)
    offset = (int(st.session_state.get("cust_page", 1)) - 1) * PAGE_SIZE
    rows = c.list_customers(conn, search, PAGE_SIZE, offset)
if rows:
    st.dataframe(pd.DataFrame([{
        "ID": r["id"], "Name": r["name"], "Email": r["email"] or "", "Phone": r["phone"] or "",
        "Open invoices": r["open_invoices"], "Balance": money(r["balance_cents"]),
        "Reminders": "off" if r["reminders_opt_out"] else "on",
    } for r in rows]), hide_index=True, width="stretch")
else:
    st.info("No customers yet." if not search else "No customer matches.")
pager("cust_page", total)

with st.expander("New customer", icon=":material/person_add:"):
    data = customer_form("new_customer")
    if data is not None:
        with connection() as conn:
            new_id = c.create_customer(conn, data, session.email)
        st.session_state["_flash"] = ("success", f"Customer {data.name} created (#{new_id}).")
        st.session_state["open_customer"] = new_id
        st.rerun()

customer_id = st.number_input("Open customer (ID)", min_value=0, step=1, key="open_customer")
if customer_id:
    with connection() as conn:
        customer = c.get_customer(conn, int(customer_id))
    if customer is None:
        st.warning(f"There is no customer {customer_id}.")
        st.stop()
    st.subheader(customer["name"])
    m = st.columns(3)
    m[0].metric("Balance (open)", money(customer["balance_cents"]))
    m[1].metric("Paid to date", money(customer["paid_cents"]))
    m[2].metric("Reminders", "opted out" if customer["reminders_opt_out"] else "on")
    with st.expander("Edit", icon=":material/edit:"):
        data = customer_form(f"edit_customer_{customer_id}", customer)
        if data is not None:
            with connection() as conn:
                c.update_customer(conn, int(customer_id), data, session.email)
            st.session_state["_flash"] = ("success", f"Customer {data.name} saved.")
            st.rerun()
    with connection() as conn:
        cjobs = c.customer_jobs(conn, int(customer_id))
        cinvoices = c.customer_invoices(conn, int(customer_id))
    st.markdown("**Jobs**")
    if cjobs:
        st.dataframe(pd.DataFrame(cjobs), hide_index=True, width="stretch")
    else:
        st.caption("No jobs.")
    st.markdown("**Invoices**")
    if cinvoices:
        st.dataframe(pd.DataFrame([{
            "ID": r["id"], "Number": r["stripe_invoice_number"] or "draft", "Kind": r["kind"], "Status": r["status"],
            "Amount": money(r["amount_due_cents"], r["currency"]), "Paid": money(r["amount_paid_cents"], r["currency"]),
            "Due": r["due_date"], "Sent": r["sent_at"], "Paid at": r["paid_at"],
        } for r in cinvoices]), hide_index=True, width="stretch")
    else:
        st.caption("No invoices.")
