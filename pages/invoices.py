"""Invoices: live tiles and list with filters, new drafts, one invoice with its lines,
Send via Stripe, resend/void, and its timeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import streamlit as st

from db import drafts, jobs
from db import queries_invoices as q
from db.customers import customer_choices
from db.pool import connection
from ui import line_editor, send_panel
from ui.session import require_login
from ui.widgets import LIVE_REFRESH, PAGE_SIZE, clock, money, pager, settings, show_flash

session = require_login()
current = settings()
currency = str(current["business.currency"])
st.title("Invoices")
show_flash()
if current.stripe_sandboxed:
    st.caption(":orange-badge[SANDBOX] No Stripe key for this mode: sends go to the local Stripe emulator.")

with connection() as conn:
    customers = customer_choices(conn)
names = {int(c["id"]): c["name"] for c in customers}
cols = st.columns([1.2, 2, 1.2, 1.2, 1])
status = cols[0].selectbox("Status", ["all", *q.STATUS_FILTERS], key="inv_status")
customer_id = cols[1].selectbox("Customer", [None, *names], format_func=lambda i: "all" if i is None else names[i],
                                key="inv_customer")
created_from = cols[2].date_input("Created from", value=None, key="inv_from")
created_to = cols[3].date_input("Created to", value=None, key="inv_to")
mode = cols[4].selectbox("Mode", ["all", "test", "live"], key="inv_mode")
base_filter = q.InvoiceFilter(status=None if status == "all" else status, customer_id=customer_id,
                              created_from=created_from, created_to=created_to,
                              mode=None if mode == "all" else mode, limit=PAGE_SIZE)


@st.fragment(run_every=LIVE_REFRESH)
def live_list() -> None:
    """Reruns on its own, so a payment shows up without reloading the page."""
    now = clock(current)
    with connection() as conn:
        tiles = q.live_tiles(conn, now.today, now.day_start)
        total = q.count_invoices(conn, base_filter, now.today)
        offset = (int(st.session_state.get("inv_page", 1)) - 1) * PAGE_SIZE
        rows = q.list_invoices(conn, replace(base_filter, offset=offset), now.today)
    t = st.columns(4)
    t[0].metric("Outstanding", money(tiles["outstanding_cents"], currency), f"{tiles['open_count']} open",
                delta_color="off")
    t[1].metric("Overdue", money(tiles["overdue_cents"], currency), f"{tiles['overdue_count']} invoices",
                delta_color="off")
    t[2].metric("Paid today", money(tiles["paid_cents"], currency), f"{tiles['paid_count']} invoices",
                delta_color="off")
    t[3].caption(f"Live: refreshes every {LIVE_REFRESH}. Updated {now.local:%H:%M:%S}.")
    table = pd.DataFrame([{
        "ID": r["id"], "Number": r["number"], "Customer": r["customer"], "Kind": r["kind"], "Status": r["status"],
        "Amount": money(r["amount_due_cents"], r["currency"]), "Paid": money(r["amount_paid_cents"], r["currency"]),
        "Remaining": money(r["amount_remaining_cents"], r["currency"]), "Due": r["due_date"],
        "Days overdue": r["days_overdue"], "Email": r["email_signal"] or "", "Mode": r["mode"] or "",
        "Attention": r["attention"] or "",
    } for r in rows])
    if table.empty:
        st.info("No invoices match these filters.")
    else:
        st.dataframe(table, hide_index=True, width="stretch", key="invoice_table")
    st.session_state["inv_total"] = total


live_list()


@st.fragment(run_every=LIVE_REFRESH)
def live_header(invoice_id: int, shown_status: str) -> None:
    """The open invoice's status (derived: overdue, processing, disputed) and amounts, live; a
    status change reruns the whole page so its actions (send, resend, void) follow."""
    with connection() as conn:
        invoice = q.get_invoice(conn, invoice_id, clock(current).today)
        payments = q.invoice_payments(conn, invoice_id)
        disputes = q.invoice_disputes(conn, invoice_id)
    assert invoice is not None
    if invoice["shown_status"] != shown_status:
        st.rerun(scope="app")
    status = invoice["shown_status"]
    st.subheader(f"Invoice #{invoice['id']} · {invoice['stripe_invoice_number'] or 'draft'} · {status}")
    st.caption(f"{invoice['customer']} <{invoice['customer_email'] or 'no email'}> · job #{invoice['job_id']} "
               f"{invoice['job_title']} · {invoice['kind']} · due {invoice['due_date'] or '—'}"
               f" · mode {invoice['mode'] or '—'}")
    cur = invoice["currency"]
    m = st.columns(4)
    m[0].metric("Amount due", money(invoice["amount_due_cents"], cur))
    m[1].metric("Paid", money(invoice["amount_paid_cents"], cur),
                f"{len(payments)} payments" if len(payments) > 1 else None, delta_color="off")
    m[2].metric("Remaining", money(invoice["amount_remaining_cents"] if invoice["status"] == "open" else 0, cur))
    m[3].metric("Refunded", money(invoice["amount_refunded_cents"], cur))
    if invoice["processing_payment_intent_id"] and invoice["status"] == "open":
        st.info(f"Processing: a bank payment of {money(invoice['processing_amount_cents'] or 0, cur)} is on its way "
                f"(since {invoice['processing_since']:%Y-%m-%d %H:%M}). Bank debits take up to four business days; "
                "reminders are paused until Stripe says it settled or failed.", icon=":material/schedule:")
    for d in disputes:
        due = f"{d['evidence_due_by']:%Y-%m-%d %H:%M}" if d["evidence_due_by"] else "—"
        if d["open"]:
            st.error(f"Disputed: {money(d['amount_cents'], d['currency'])} at stake ({d['reason'] or 'no reason'}, "
                     f"{d['status'].replace('_', ' ')}). Evidence due by {due} — answer it in Stripe's Dashboard.",
                     icon=":material/gavel:")
        else:
            st.caption(f"Dispute {d['stripe_dispute_id']} for {money(d['amount_cents'], d['currency'])}: "
                       f"{d['status']}" + (" — the amount was taken back." if d["status"] == "lost" else "."))
    if len(payments) > 1 or (payments and invoice["status"] == "open"):
        st.markdown("**Payments**")
        st.dataframe(pd.DataFrame([{
            "Paid at": p["paid_at"], "Amount": money(p["amount_cents"], p["currency"]),
            "Payment": p["stripe_payment_intent_id"] or p["stripe_payment_id"],
        } for p in payments]), hide_index=True, width="stretch", key="invoice_payments")
    if invoice["attention"]:
        st.warning(f"Needs attention: {invoice['attention']} — {invoice['attention_detail'] or ''}")


pager("inv_page", int(st.session_state.get("inv_total", 0)))

st.divider()
left, right = st.columns([1, 2])
with left, st.expander("New draft from a job", icon=":material/add:"):
    with connection() as conn:
        job_list = jobs.job_choices(conn)
    if not job_list:
        st.info("Create a job first (Jobs page).")
    else:
        labels = {int(j["id"]): f"#{j['id']} {j['title']} — {j['customer']}" for j in job_list}
        with st.form("new_draft"):
            job_id = st.selectbox("Job", list(labels), format_func=labels.__getitem__)
            kind = st.selectbox("Kind", drafts.KINDS)
            terms = int(current["invoice.payment_terms_days"])
            due = st.date_input("Due date", value=clock(current).today + timedelta(days=terms))
            create = st.form_submit_button("Create draft", type="primary")
        if create:
            with connection() as conn:
                new_id = drafts.create_draft(conn, int(job_id), kind, due, currency, session.email, session.user_id)
            st.session_state["open_invoice"] = new_id
            st.session_state["_flash"] = ("success", f"Draft #{new_id} created: add its lines below.")
            st.rerun()

with right:
    if "invoice" in st.query_params and "open_invoice" not in st.session_state:
        st.session_state["open_invoice"] = int(st.query_params["invoice"])
    invoice_id = st.number_input("Open invoice (ID from the list)", min_value=0, step=1, key="open_invoice")

if invoice_id:
    with connection() as conn:
        invoice = q.get_invoice(conn, int(invoice_id), clock(current).today)
    if invoice is None:
        st.warning(f"There is no invoice {invoice_id}.")
        st.stop()
    live_header(int(invoice["id"]), str(invoice["shown_status"]))
    if invoice["status"] == "draft":
        st.markdown("**Lines**")
        line_editor.render(int(invoice["id"]), invoice["currency"], session.email)
    if invoice["status"] in ("draft", "sending"):
        send_panel.send_button(invoice, session)
    send_panel.show_result(int(invoice["id"]), session)
    if invoice["status"] == "open":
        send_panel.open_invoice_actions(invoice, session)
    elif invoice["hosted_invoice_url"]:
        st.markdown(f"[Stripe's invoice page]({invoice['hosted_invoice_url']})")
    st.markdown("**Timeline**")
    with connection() as conn:
        timeline = q.invoice_timeline(conn, int(invoice["id"]))
    if timeline:
        st.dataframe(pd.DataFrame(timeline).rename(columns={"at": "When", "source": "Source", "what": "What",
                                                           "who": "By"}), hide_index=True, width="stretch")
    else:
        st.caption("Nothing yet.")
