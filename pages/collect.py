"""Collect: the tech's phone in the driveway. The customer and what is due, a large QR code of
the pay link, Text it and Email it, and a live status that turns to Paid (or Processing, or
Declined with the reason) without a reload, then offers the next job. Phone first (390 px)."""

from __future__ import annotations

import streamlit as st

from crm.collect.card import paid_with
from crm.collect.state import collect_state
from crm.texts.phone import display as phone_display
from crm.texts.send import TextRefused, text_pay_link
from db.pool import connection
from db.queries_collect import collect_view, next_job
from ui.open_record import no_such, parse_id
from ui.plain import plain
from ui.qr import qr_svg
from ui.session import require_login
from ui.widgets import clock, money, settings

COLLECT_REFRESH = "1s"  # Paid shows within about a second of the payment's webhook
session = require_login()
current = settings()
tz = clock(current).tz

if "invoice" in st.query_params:
    linked = parse_id(st.query_params["invoice"])
    if linked is None:
        st.session_state.pop("collect_invoice", None)
        st.warning(no_such("invoice"))
    else:
        st.session_state["collect_invoice"] = linked
invoice_id = st.session_state.get("collect_invoice")
if not invoice_id:
    st.title("Collect")
    st.info("Open an invoice and press Collect now.")
    st.stop()
st.query_params["invoice"] = str(invoice_id)
with connection() as conn:
    view = collect_view(conn, int(invoice_id))
if view is None:
    st.session_state.pop("collect_invoice", None)
    st.warning(no_such("invoice", int(invoice_id)))
    st.stop()

st.title(plain(view["customer_name"]))
st.caption(f"Invoice {plain(view['stripe_invoice_number'] or '#' + str(view['id']))} · "
           f"total {money(view['amount_due_cents'], view['currency'])}")


@st.fragment(run_every=COLLECT_REFRESH)
def live_status(invoice_id: int) -> None:
    with connection() as conn:
        row = collect_view(conn, invoice_id)
    if row is None:
        return
    card = paid_with(current, str(row["mode"]), row["last_charge_id"], row["last_payment_intent_id"]) \
        if row["status"] == "paid" else None
    state = collect_state(row, tz, card)
    box = {"paid": st.success, "declined": st.error, "processing": st.warning}.get(state.kind, st.info)
    box(f"**{plain(state.headline)}**", icon={"paid": ":material/check_circle:", "declined": ":material/error:",
                                       "processing": ":material/hourglass_top:"}.get(state.kind,
                                                                                      ":material/schedule:"))
    if state.detail:
        st.caption(plain(state.detail))
    if row["text_status"]:
        note = f"Text to {plain(phone_display(row['text_to']))}: {plain(row['text_status'])}"
        st.caption(note + (f" — {plain(row['text_error'])}" if row["text_error"] else ""))
    if state.kind == "paid":
        with connection() as conn:
            nxt = next_job(conn, row["job_id"])
        label = f"Next job: {plain(nxt['title'])} ({plain(nxt['customer_name'])})" if nxt else "Back to jobs"
        if st.button(label, key="collect_next_job", type="primary", icon=":material/arrow_forward:",
                     width="stretch"):
            if nxt:
                st.session_state["open_job"] = int(nxt["id"])
            st.session_state.pop("collect_invoice", None)
            st.switch_page("pages/jobs.py")
    if state.final != st.session_state.get("collect_final", False):
        st.session_state["collect_final"] = state.final
        st.rerun()  # the whole screen: hide the QR and buttons once paid


live_status(int(invoice_id))
if view["status"] != "open" or st.session_state.get("collect_final"):
    st.stop()

st.metric("Amount due", money(view["amount_remaining_cents"], view["currency"]))
if view["hosted_invoice_url"]:
    st.image(qr_svg(view["hosted_invoice_url"]), caption="Scan to pay", width="stretch")

phone = st.text_input("Customer's mobile", value=phone_display(view["customer_phone"]),
                      key=f"collect_phone_{invoice_id}")
phone_msg = st.empty()
if view["texts_off"]:
    st.caption(f"Texts are off for this customer ({plain(view['texts_off_reason'])}). Email it instead.")
text_col, email_col = st.columns(2)
if text_col.button("Text it", key="collect_text", type="primary", icon=":material/sms:", width="stretch"):
    try:
        with st.spinner("Texting…"):
            result = text_pay_link(int(invoice_id), phone, session.email)
    except TextRefused as exc:
        (phone_msg if exc.field == "phone" else st).error(plain(exc))
    else:
        (st.success if result.ok else st.error)(plain(result.message))  # may carry Twilio's words
if email_col.button("Email it", key="collect_email", icon=":material/mail:", width="stretch"):
    from crm.send.followups import resend_invoice_email
    from crm.send.result import SendRefused

    try:
        with st.spinner("Emailing…"):
            emailed = resend_invoice_email(int(invoice_id), actor=session.email)
    except SendRefused as exc:
        st.error(plain(exc))
    else:
        (st.success if emailed.ok else st.error)(plain(emailed.message))
