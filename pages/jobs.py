"""Jobs: list, create, edit, status by hand; the job's invoices (deposit and final), and
when and by which event it completed."""

from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from crm.records import edits
from crm.validation import name_error, text_error
from db import jobs as j
from db.customers import customer_choices
from db.pool import connection
from ui.open_record import not_found, open_id
from ui.plain import plain
from ui.session import require_login
from ui.widgets import PAGE_SIZE, clock, frame, money, pager, settings, show_flash, table

session = require_login()
current = settings()
st.title("Jobs")
show_flash()

with connection() as conn:
    customers = customer_choices(conn)
names = {int(r["id"]): r["name"] for r in customers}
cols = st.columns([1, 2, 2])
status = cols[0].selectbox("Status", ["all", *j.JOB_STATUSES], key="job_status")
customer_id = cols[1].selectbox("Customer", [None, *names], format_func=lambda i: "all" if i is None else names[i],
                                key="job_customer")
search = cols[2].text_input("Search title or customer", key="job_search")
offset = (int(st.session_state.get("job_page", 1)) - 1) * PAGE_SIZE
with connection() as conn:
    rows = j.list_jobs(conn, None if status == "all" else status, customer_id, search, PAGE_SIZE + 1, offset)
more = len(rows) > PAGE_SIZE
rows = rows[:PAGE_SIZE]
now = clock(current)
if rows:
    shown = [{**r, "status": r["status"].replace("_", " "),
              "by": ("Stripe payment" if r["completed_by_event_id"] else "staff") if r["completed_at"] else ""}
             for r in rows]
    picked = table(frame(shown, {"title": "Title", "customer": "Customer", "status": "Status", "invoices": "Invoices",
                                 "scheduled_for": "Scheduled", "completed_at": "Completed", "by": "Completed by",
                                 "created_at": "Created"}, now.tz), key="job_table", select=True)
    if picked is not None:
        st.session_state["open_job"] = int(shown[picked]["id"])
    st.caption(f"Newest first (by when the job was created). Click a row to open the job. Times in {now.tz_label}.")
else:
    st.info("No jobs match.")
pager("job_page", offset + len(rows) + (1 if more else 0))

with st.expander("New job", icon=":material/add:"):
    if not names:
        st.info("Create a customer first (Customers page).")
    else:
        with st.form("new_job"):
            job_customer = st.selectbox("Customer", list(names), format_func=names.__getitem__)
            title = st.text_input("Title")
            title_msg = st.empty()
            description = st.text_area("Description")
            desc_msg = st.empty()
            site = st.text_input("Site address")
            when = st.date_input("Scheduled for", value=None)
            create = st.form_submit_button("Create job", type="primary")
        if create:
            errors = {title_msg: name_error(title, "Title"), desc_msg: text_error(description, "Description")}
            for slot, message in errors.items():
                if message:
                    slot.error(plain(message))  # may quote what was typed
            if not any(errors.values()):
                scheduled = datetime.combine(when, time(8), clock(current).local.tzinfo) if when else None
                new_id = edits.create_job(edits.JobInput(int(job_customer), title, description, site or None,
                                                         scheduled), session.email)
                st.session_state["_flash"] = ("success", f"Job #{new_id} created.")
                st.session_state["open_job"] = new_id
                st.rerun()
            else:
                st.caption("Nothing was saved.")

job_id = open_id("job")
if job_id:
    with connection() as conn:
        job = j.get_job(conn, int(job_id))
        invoices = j.job_invoices(conn, int(job_id))
        completion = j.job_completion(conn, int(job_id))
    if job is None:
        not_found("job", int(job_id))
        st.stop()
    st.divider()
    head, close = st.columns([4, 1])
    head.subheader(f"Job #{job['id']} · {plain(job['title'])} · {job['status'].replace('_', ' ')}")
    if close.button("Close", key="close_job", icon=":material/close:"):
        st.session_state.pop("open_job", None)
        st.rerun()
    st.caption(f"{plain(job['customer'])} · site {plain(job['site_address'] or '—')} · scheduled "
               f"{now.show(job['scheduled_for']) or '—'}")
    if job["status"] == "completed":
        how = ("when its last invoice was paid" if job["completed_by_event_id"]
               else f"by {plain(completion['actor'] if completion else 'staff')}")
        st.success(f"Completed {now.show(job['completed_at'])} ({now.tz_label}) {how}.")
        if session.is_owner and job["completed_by_event_id"]:
            with st.expander("Details"):
                st.caption(f"Completed by Stripe event {plain(job['completed_by_event_id'])}.")
    with st.form(f"edit_job_{job_id}"):
        new_title = st.text_input("Title", value=job["title"])
        title_msg = st.empty()
        new_desc = st.text_area("Description", value=job["description"])
        desc_msg = st.empty()
        new_site = st.text_input("Site address", value=job["site_address"] or "")
        new_status = st.selectbox("Status", j.JOB_STATUSES, index=j.JOB_STATUSES.index(job["status"]))
        save = st.form_submit_button("Save job", type="primary")
    if save:
        errors = {title_msg: name_error(new_title, "Title"), desc_msg: text_error(new_desc, "Description")}
        for slot, message in errors.items():
            if message:
                slot.error(plain(message))  # may quote what was typed
        if any(errors.values()):
            st.caption("Nothing was saved.")
        else:
            edits.save_job(int(job_id), new_title, new_desc, new_site or None, job["scheduled_for"], new_status,
                           session.email)
            st.session_state["_flash"] = ("success", f"Job #{job_id} saved.")
            st.rerun()
    st.markdown("**Invoices** (deposit and final)")
    if invoices:
        shown_inv = [{**r, "number": r.get("stripe_invoice_number") or f"#{r['id']}",
                      "amount": money(r["amount_due_cents"], r["currency"]),
                      "paid": money(r["amount_paid_cents"], r["currency"])} for r in invoices]
        picked_inv = table(frame(shown_inv, {"number": "Invoice", "kind": "Kind", "status": "Status",
                                             "amount": "Amount", "paid": "Paid", "due_date": "Due",
                                             "paid_at": "Paid at"}, now.tz), key="job_invoices_table", select=True)
        st.caption("Click an invoice to open it.")
        if picked_inv is not None:
            st.session_state["open_invoice"] = int(invoices[picked_inv]["id"])
            st.switch_page("pages/invoices.py")
    else:
        st.caption("No invoices yet: create a draft on the Invoices page.")
