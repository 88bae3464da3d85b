"""Customers: search and list with balances, create, edit (email validated), their jobs
and invoices, opt out of reminders, their statement (email it, or print it) and timeline."""

from __future__ import annotations

import streamlit as st

from crm.email.invoice_email import render_statement_page
from crm.email.statements import StatementRefused, build_statement, send_statement
from crm.records import edits
from crm.texts.phone import display as phone_display
from crm.texts.phone import phone_error, to_e164
from crm.validation import email_error, name_error, text_error
from db import customers as c
from db.pool import connection
from ui.open_record import not_found, open_id
from ui.plain import plain
from ui.session import require_login
from ui.widgets import PAGE_SIZE, clock, frame, money, pager, settings, show_flash, table

session = require_login()
current = settings()
currency = str(current["business.currency"])
country = str(current["business.country"])
CHANNELS = {"email": "Email", "text": "Text (email when texts are off)", "both": "Email and text"}
st.title("Customers")
show_flash()


def customer_form(key: str, existing: dict | None = None) -> edits.CustomerInput | None:
    """The create/edit form; returns clean input, or None (with messages under the fields)."""
    existing = existing or {}
    with st.form(key):
        name = st.text_input("Name", value=existing.get("name", ""), key=f"{key}_name")
        name_msg = st.empty()
        email = st.text_input("Email", value=existing.get("email") or "", key=f"{key}_email")
        email_msg = st.empty()
        phone = st.text_input("Mobile phone", value=existing.get("phone") or existing.get("phone_unparsed") or "",
                              key=f"{key}_phone", help="For texts. Without a + country code it is read as a "
                              f"number in {country}.")
        phone_msg = st.empty()
        channel = st.selectbox("Reminders by", list(CHANNELS), format_func=CHANNELS.__getitem__,
                               index=list(CHANNELS).index(existing.get("channel") or "email"), key=f"{key}_channel")
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
        phone_msg: phone_error(phone, country),
        address_msg: text_error(address, "Address"),
    }
    for slot, message in errors.items():
        if message:
            slot.error(plain(message))  # may quote what was typed
    if any(errors.values()):
        st.caption("Nothing was saved.")
        return None
    return edits.CustomerInput(name.strip(), email.strip() or None, to_e164(phone, country) if phone.strip() else None,
                               address.strip() or None, opt_out, channel)


SORTS = {"newest": "Newest first", "name": "Name, A to Z", "balance": "Balance, highest first"}
now = clock(current)
left, right = st.columns([2, 1])
search = left.text_input("Search by name or email", key="cust_search")
sort = right.selectbox("Sort", list(SORTS), format_func=SORTS.__getitem__, key="cust_sort")
with connection() as conn:
    total = c.count_customers(conn, search)
    offset = (int(st.session_state.get("cust_page", 1)) - 1) * PAGE_SIZE
    rows = c.list_customers(conn, search, PAGE_SIZE, offset, sort)
if rows:
    shown = [{**r, "balance": money(r["balance_cents"], currency),
              "reminders": "off" if r["reminders_opt_out"] else "on"} for r in rows]
    picked = table(frame(shown, {"name": "Name", "email": "Email", "open_invoices": "Open invoices",
                                 "balance": "Balance", "phone": "Phone", "reminders": "Reminders",
                                 "created_at": "Customer since"}, now.tz),
                   key="customer_table", select=True)
    if picked is not None:
        st.session_state["open_customer"] = int(shown[picked]["id"])
    st.caption(f"{SORTS[sort]}. Click a row to open the customer.")
else:
    st.info("No customers yet." if not search else "No customer matches.")
pager("cust_page", total)

with st.expander("New customer", icon=":material/person_add:"):
    data = customer_form("new_customer")
    if data is not None:
        new_id = edits.create_customer(data, session.email)
        st.session_state["_flash"] = ("success", f"Customer {plain(data.name)} created (#{new_id}).")
        st.session_state["open_customer"] = new_id
        st.rerun()

customer_id = open_id("customer")
if customer_id:
    with connection() as conn:
        customer = c.get_customer(conn, int(customer_id))
    if customer is None:
        not_found("customer", int(customer_id))
        st.stop()
    st.divider()
    head, close = st.columns([4, 1])
    head.subheader(plain(customer["name"]))
    if close.button("Close", key="close_customer", icon=":material/close:"):
        st.session_state.pop("open_customer", None)
        st.rerun()
    st.caption(" · ".join(plain(x) for x in (customer["email"] or "no email", phone_display(customer["phone"]),
                                             customer["address"]) if x))
    if customer["phone_unparsed"]:
        st.warning(f"The phone “{plain(customer['phone_unparsed'])}” could not be read as a number: edit it to "
                   "text them.")
    if customer["texts_off"]:
        off, back = st.columns([3, 1])
        off.error(f"Texts off: {plain(customer['texts_off_reason'] or 'turned off')}"
                  f" on {customer['texts_off_at']:%Y-%m-%d}. Email is unaffected; reminders go by email.",
                  icon=":material/sms_failed:")
        if back.button("Texts back on", key=f"texts_on_{customer_id}",
                       help="Only when the customer texted START or asked for texts again."):
            edits.set_texts_on(int(customer_id), session.email)
            st.rerun()
    m = st.columns(3)
    m[0].metric("Balance (open)", money(customer["balance_cents"], currency))
    m[1].metric("Paid to date", money(customer["paid_cents"], currency))
    m[2].metric("Reminders", "opted out" if customer["reminders_opt_out"] else "on")
    with st.expander("Edit", icon=":material/edit:"):
        data = customer_form(f"edit_customer_{customer_id}", customer)
        if data is not None:
            edits.update_customer(int(customer_id), data, session.email)
            st.session_state["_flash"] = ("success", f"Customer {plain(data.name)} saved.")
            st.rerun()

    st.markdown("**Statement** (open invoices)")
    with connection() as conn:
        statement = build_statement(conn, int(customer_id), current, now.today)
    if not statement.lines:
        st.caption("No open invoices: nothing to put on a statement.")
    else:
        table(frame([{"number": ln.number, "sent": ln.sent_on, "due": ln.due, "late": ln.days_overdue,
                      "balance": ln.balance, "link": ln.pay_url or ""}
                     for ln in statement.lines],
                    {"number": "Invoice", "sent": "Sent", "due": "Due", "late": "Days overdue", "balance": "Balance",
                     "link": "Pay link"}, now.tz), key="statement_table",
              column_config={"Pay link": st.column_config.LinkColumn("Pay link", display_text="Open pay page")})
        st.caption(f"Total due {statement.total_label()}"
                   + (f", of which {statement.total_label(overdue=True)} is past due" if statement.overdue_totals()
                      else "") + f". As of {now.today:%Y-%m-%d}, oldest due first.")
        send_col, print_col = st.columns(2)
        if send_col.button("Email statement", key=f"email_statement_{customer_id}", type="primary",
                           icon=":material/outgoing_mail:",
                           help=f"One email to {plain(customer['email'] or 'the customer')} listing every open invoice "
                                "with its pay link."):
            try:
                with st.spinner("Emailing the statement…"):
                    result = send_statement(int(customer_id), session.email)
            except StatementRefused as exc:
                st.error(plain(exc))  # names the customer
            else:
                (st.success if result.ok else st.error)(plain(result.message))
        print_col.download_button("Printable statement", render_statement_page(statement),
                                  file_name=f"statement-{customer_id}-{now.today:%Y-%m-%d}.html",
                                  mime="text/html", icon=":material/print:", key=f"print_statement_{customer_id}",
                                  help="An HTML page to open and print (or save as PDF from the browser).")

    with connection() as conn:
        cjobs = c.customer_jobs(conn, int(customer_id))
        cinvoices = c.customer_invoices(conn, int(customer_id))
        timeline = c.customer_timeline(conn, int(customer_id))
    st.markdown("**Jobs**")
    if cjobs:
        shown_jobs = [{**r, "status": r["status"].replace("_", " ")} for r in cjobs]
        picked_job = table(frame(shown_jobs, {"title": "Title", "status": "Status", "scheduled_for": "Scheduled",
                                              "completed_at": "Completed", "created_at": "Created"}, now.tz),
                           key="customer_jobs_table", select=True)
        st.caption("Newest first. Click a job to open it.")
        if picked_job is not None:
            st.session_state["open_job"] = int(cjobs[picked_job]["id"])
            st.switch_page("pages/jobs.py")
    else:
        st.caption("No jobs.")
    st.markdown("**Invoices**")
    if cinvoices:
        shown_inv = [{**r, "number": r["stripe_invoice_number"] or f"draft #{r['id']}",
                      "amount": money(r["amount_due_cents"], r["currency"]),
                      "paid": money(r["amount_paid_cents"], r["currency"])} for r in cinvoices]
        picked_inv = table(frame(shown_inv, {"number": "Invoice", "status": "Status", "amount": "Amount",
                                             "paid": "Paid", "due_date": "Due", "sent_at": "Sent",
                                             "paid_at": "Paid at", "kind": "Kind"}, now.tz),
                           key="customer_invoices_table", select=True)
        st.caption("Newest first. Click an invoice to open it.")
        if picked_inv is not None:
            st.session_state["open_invoice"] = int(cinvoices[picked_inv]["id"])
            st.switch_page("pages/invoices.py")
    else:
        st.caption("No invoices.")
    st.markdown("**Timeline**")
    if timeline:
        table(frame(timeline, {"at": "When", "source": "Source", "what": "What", "who": "By / to"}, now.tz),
              key="customer_timeline_table")
        st.caption(f"Newest first. Times in {now.tz_label}.")
    else:
        st.caption("Nothing yet.")
