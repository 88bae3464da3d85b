"""Invoices: live tiles and list with filters, new drafts, one invoice with its lines,
Send via Stripe, resend/void, and its timeline."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import streamlit as st

from crm.records import edits
from db import drafts, jobs
from db import queries_invoices as q
from db.customers import customer_choices
from db.pool import connection
from ui import cash_payment, line_editor, refund_panel, scroll, send_panel, timeline_text
from ui.collect_link import collect_button
from ui.invoice_view import LIST_COLUMN_WIDTHS, filter_label, invoice_title, list_row, remaining_cents
from ui.open_record import not_found, open_id
from ui.plain import plain
from ui.session import require_login
from ui.widgets import LIVE_REFRESH, PAGE_SIZE, clock, frame, money, pager, plural, settings, show_flash, table

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
# One collapsed control, so a phone's first screen shows invoices, not five stacked filters.
with st.expander(filter_label(st.session_state.to_dict(), {i: plain(n) for i, n in names.items()}),
                 icon=":material/filter_list:"):
    cols = st.columns([1.2, 2, 1.2, 1.2, 1])
    status = cols[0].selectbox("Status", ["all", *q.STATUS_FILTERS], key="inv_status")
    customer_id = cols[1].selectbox("Customer", [None, *names],
                                    format_func=lambda i: "all" if i is None else names[i], key="inv_customer")
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
                delta_color="off", delta_arrow="off")
    t[1].metric("Overdue", money(tiles["overdue_cents"], currency), plural(tiles["overdue_count"], "invoice"),
                delta_color="off", delta_arrow="off")
    t[2].metric("Paid today", money(tiles["paid_cents"], currency), plural(tiles["paid_count"], "invoice"),
                delta_color="off", delta_arrow="off")
    t[3].caption(f"Live: refreshes every {LIVE_REFRESH}. Updated {now.local:%H:%M:%S} {now.tz_label}.")
    shown = [list_row(r, now.today) for r in rows]
    columns = {"number": "Invoice", "customer": "Customer", "amount": "Amount", "state": "Status", "due": "Due"}
    if st.session_state.get("inv_more_columns"):
        columns |= {"paid": "Paid", "remaining": "Remaining", "refunded": "Refunded", "kind": "Kind",
                    "signal": "Email / attention", "mode": "Mode", "created_at": "Created", "id": "ID"}
    if not shown:
        st.info("No invoices match these filters.")
    else:
        # A new click opens that invoice (the whole page follows); the list refreshing under
        # an old selection opens nothing.
        picked = table(frame(shown, columns, now.tz), key="invoice_table", select=True,
                       column_config=None if st.session_state.get("inv_more_columns") else LIST_COLUMN_WIDTHS)
        if picked is not None and shown[picked]["id"] != st.session_state.get("open_invoice"):
            st.session_state["open_invoice"] = int(shown[picked]["id"])
            st.rerun(scope="app")
    st.caption("Newest first (by when the invoice was created). Click a row to open the invoice.")
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
        declines = q.invoice_declines(conn, invoice_id)
    assert invoice is not None
    if invoice["shown_status"] != shown_status:
        st.rerun(scope="app")
    status = invoice["shown_status"]
    st.subheader(invoice_title(invoice, status))
    st.caption(f"{plain(invoice['customer'])} <{plain(invoice['customer_email'] or 'no email')}> · job "
               f"#{invoice['job_id']} {plain(invoice['job_title'])} · {invoice['kind']} · "
               f"due {invoice['due_date'] or '—'}"
               + (f" · Stripe {invoice['mode']} mode" if invoice["mode"] else "")
               + (" · demo data (not at Stripe)" if invoice.get("demo") and not invoice["stripe_invoice_id"]
                  else ""))
    cur = invoice["currency"]
    fees = [p["fee_cents"] for p in payments]
    known_fees = [f for f in fees if f is not None]
    m = st.columns(6)
    m[0].metric("Amount due", money(invoice["amount_due_cents"], cur))
    m[1].metric("Paid", money(invoice["amount_paid_cents"], cur),
                f"{len(payments)} payments" if len(payments) > 1 else None, delta_color="off", delta_arrow="off")
    m[2].metric("Remaining", money(remaining_cents(invoice), cur))
    m[3].metric("Refunded", money(invoice["amount_refunded_cents"], cur),
                invoice["refund_state"],
                delta_color="off", delta_arrow="off")
    m[4].metric("Stripe fees", money(sum(known_fees), cur) if known_fees else "—",
                "being fetched" if len(known_fees) < len(fees) else None, delta_color="off", delta_arrow="off",
                help="From each payment's balance transaction at Stripe.")
    m[5].metric("Net", money(int(invoice["amount_paid_cents"]) - int(invoice["amount_refunded_cents"])
                             - sum(known_fees), cur) if fees and len(known_fees) == len(fees) else "—",
                help="Paid less refunds and Stripe's fees: what reaches the bank.")
    if invoice["processing_payment_intent_id"] and invoice["status"] == "open":
        st.info(f"Processing: a bank payment of {money(invoice['processing_amount_cents'] or 0, cur)} is on its way "
                f"(since {clock(current).show(invoice['processing_since'])}). Bank debits take up to four business "
                "days; reminders are paused until Stripe says it settled or failed.", icon=":material/schedule:")
    for d in disputes:
        due = clock(current).show(d["evidence_due_by"]) or "—"
        if d["open"]:
            st.error(f"Disputed: {money(d['amount_cents'], d['currency'])} at stake "
                     f"({plain(d['reason'] or 'no reason')}, "
                     f"{d['status'].replace('_', ' ')}). Evidence due by {due} — answer it in Stripe's Dashboard.",
                     icon=":material/gavel:")
        else:
            st.caption(f"Dispute {d['stripe_dispute_id']} for {money(d['amount_cents'], d['currency'])}: "
                       f"{d['status']}" + (" — the amount was taken back." if d["status"] == "lost" else "."))
    if len(payments) > 1 or (payments and invoice["status"] == "open"):
        st.markdown("**Payments**")
        table(frame([{**p, "amount": money(p["amount_cents"], p["currency"]),
                      "fee": money(p["fee_cents"], p["currency"]) if p["fee_cents"] is not None else "being fetched",
                      "payment": p["stripe_payment_intent_id"] or p["stripe_payment_id"]} for p in payments],
                    {"paid_at": "Paid at", "amount": "Amount", "fee": "Stripe fee", "payment": "Payment"},
                    clock(current).tz), key="invoice_payments")
    if invoice["attention"]:
        st.warning(f"Needs attention: {plain(invoice['attention'])} — {plain(invoice['attention_detail'])}")
    for d in declines:
        st.error(f"Payment declined {d['failed_at']:%Y-%m-%d %H:%M}: {plain(d['message'] or 'no message')} "
                 f"(code {plain(d['code'] or '—')}, decline code {plain(d['decline_code'] or '—')})")


more, pages_slot = st.columns([1, 1])
more.toggle("More columns", key="inv_more_columns")
with pages_slot:
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
            new_id = edits.create_draft(int(job_id), kind, due, currency, session.email, session.user_id)
            st.session_state["open_invoice"] = new_id
            st.session_state["_flash"] = ("success", f"Draft #{new_id} created: add its lines below.")
            st.rerun()

invoice_id = open_id("invoice")


def close_invoice() -> None:
    """Before the rerun: forget the list's selection too, so a click on the same row opens it again."""
    st.session_state.pop("open_invoice", None)
    st.session_state.pop("invoice_table", None)
    st.session_state.pop("_invoice_table_clicked", None)
    scroll.forget("invoice")


if invoice_id:
    right.button("Close invoice", key="close_invoice", icon=":material/close:", on_click=close_invoice)

if invoice_id:
    with connection() as conn:
        invoice = q.get_invoice(conn, int(invoice_id), clock(current).today)
    if invoice is None:
        not_found("invoice", int(invoice_id))
        st.stop()
    scroll.into_view_once("invoice", int(invoice["id"]))
    live_header(int(invoice["id"]), str(invoice["shown_status"]))
    if invoice["status"] == "draft":
        st.markdown("**Lines**")
        line_editor.render(int(invoice["id"]), invoice["currency"], session.email)
    if invoice["status"] in ("draft", "sending"):
        send_panel.send_button(invoice, session)
    # The pay link once: under the open invoice's actions, or with the result of a Send that
    # did not leave it open.
    if invoice["status"] in ("draft", "sending", "open"):
        send_panel.show_result(int(invoice["id"]), session, pay_link=invoice["status"] != "open")
    if invoice["status"] == "open":
        collect_button(int(invoice["id"]))
        send_panel.open_invoice_actions(invoice, session)
    elif invoice["hosted_invoice_url"]:
        st.markdown(f"[Stripe's invoice page]({invoice['hosted_invoice_url']})")
    refund_panel.render(invoice, session)
    cash_payment.panel(invoice, session)
    st.markdown("**Timeline**")
    with connection() as conn:
        facts = q.invoice_timeline(conn, int(invoice["id"]))
    entries = timeline_text.timeline(facts, invoice["currency"])
    tz = clock(current).tz
    if entries:
        table(frame([vars(e) for e in reversed(entries)], {"at": "When", "what": "What", "who": "By"}, tz))
        st.caption(f"Newest first. Times in {clock(current).tz_label}.")
    else:
        st.caption("Nothing yet.")
    if session.is_owner and facts:
        with st.expander("Details: Stripe events and ids"):
            full = timeline_text.timeline(facts, invoice["currency"], details=True)
            table(frame([vars(e) for e in reversed(full)], {"at": "When", "what": "What", "ref": "Reference"}, tz))
