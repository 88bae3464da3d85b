"""Activity: Stripe events with their outcome, emails and their events, reminders and
their states, each with filters; reconcile runs and a button to run one."""

from __future__ import annotations

import streamlit as st

from crm.stripe.reconcile import latest_runs, run_reconcile
from db import queries_activity as q
from db.pool import connection
from ui.plain import plain
from ui.reconcile_text import reconcile_summary
from ui.session import require_login
from ui.widgets import clock, frame, settings, table

session = require_login()
now = clock(settings())
st.title("Activity")
st.caption(f"Newest first. Times in {now.tz_label}.")
stripe_tab, email_tab, reminder_tab, reconcile_tab = st.tabs(
    ["Stripe events", "Emails", "Reminders", "Reconcile with Stripe"])

STRIPE_COLUMNS = {"received_at": "Received", "type": "Type", "outcome": "Outcome", "invoice": "Invoice",
                  "mode": "Mode", "duplicate_deliveries": "Extra deliveries", "id": "Event"}
STRIPE_MORE = {"source": "Source", "object_id": "Stripe object", "detail": "Detail"}
EMAIL_COLUMNS = {"created_at": "Created", "kind": "Kind", "status": "Status", "to_address": "To",
                 "subject": "Subject", "invoice": "Invoice", "sent_at": "Sent", "delivered_at": "Delivered",
                 "first_opened_at": "Opened", "first_clicked_at": "Clicked", "open_count": "Opens",
                 "click_count": "Clicks", "events": "Events", "error": "Error", "id": "Email"}
EMAIL_EVENT_COLUMNS = {"occurred_at": "When", "type": "Event", "kind": "Email kind", "invoice": "Invoice",
                       "to_address": "To", "resend_id": "Resend email", "id": "Delivery (svix id)"}
REMINDER_COLUMNS = {"send_at": "Goes out", "customer": "Customer", "invoice": "Invoice", "sequence": "Reminder",
                    "offset_days": "Days after due", "status": "Status", "cancel_reason": "Cancel reason",
                    "resend_cancel": "Resend cancel", "attempts": "Attempts", "last_error": "Last error",
                    "sent_at": "Sent", "cancelled_at": "Cancelled", "id": "ID"}
DECLINE_COLUMNS = {"failed_at": "Declined", "invoice": "Invoice", "customer": "Customer", "code": "Code",
                   "decline_code": "Decline code", "message": "Stripe's message", "mode": "Mode",
                   "payment_intent": "Payment intent"}
RUN_COLUMNS = {"started_at": "Started", "actor": "By", "mode": "Mode", "status": "Status",
               "events_seen": "Events seen", "events_applied": "Applied", "events_duplicate": "Duplicates",
               "invoices_checked": "Invoices checked", "invoices_repaired": "Repaired", "errors": "Errors",
               "id": "Run"}


def rows_table(rows: list[dict], columns: dict[str, str], empty: str, key: str) -> None:
    if rows:
        table(frame(rows, columns, now.tz), key=key)
    else:
        st.info(empty)


with stripe_tab:
    a, b = st.columns(2)
    outcome = a.selectbox("Outcome", ["all", *q.STRIPE_OUTCOMES], key="act_outcome",
                          help="duplicate: delivered more than once (applied once)")
    type_prefix = b.text_input("Event type starts with", placeholder="invoice.", key="act_type")
    with connection() as conn:
        events = q.stripe_events(conn, None if outcome == "all" else outcome, type_prefix)
    more = st.toggle("More columns", key="act_stripe_more")
    rows_table(events, STRIPE_COLUMNS | (STRIPE_MORE if more else {}), "No Stripe events yet.", "stripe_events_table")
    st.markdown("**Declined payments** (the reason Stripe gave on the payment intent)")
    with connection() as conn:
        declined = q.declines(conn)
    rows_table(declined, DECLINE_COLUMNS, "No declined payments.", "declines_table")

with email_tab:
    a, b = st.columns(2)
    kind = a.selectbox("Kind", ["all", *q.EMAIL_KINDS], key="act_email_kind")
    status = b.selectbox("Status", ["all", "pending", "scheduled", "sent", "delivered", "delivery_delayed", "bounced",
                                    "complained", "failed", "suppressed", "cancelled"], key="act_email_status")
    with connection() as conn:
        mails = q.emails(conn, None if kind == "all" else kind, None if status == "all" else status)
        mail_events = q.email_events(conn)
    rows_table(mails, EMAIL_COLUMNS, "No emails yet.", "emails_table")
    st.markdown("**Email events** (Resend webhooks)")
    rows_table(mail_events, EMAIL_EVENT_COLUMNS, "No email events yet.", "email_events_table")

with reminder_tab:
    state = st.selectbox("State", ["all", *q.REMINDER_STATUSES], key="act_reminder_state")
    with connection() as conn:
        reminders = q.reminders(conn, None if state == "all" else state)
    rows_table(reminders, REMINDER_COLUMNS, "No reminders.", "reminders_table")
    st.caption("Latest first, by when each goes (or went) out. Resend cancel: requested = being cancelled at Resend; "
               "done = cancelled there; too_late = Resend had already sent it; possibly_sent = its hand-off was never "
               "recorded and it was too close to its send time to check safely, so it may have gone out (see Last "
               "error).")

with reconcile_tab:
    st.caption("Lists Stripe's events since the last run and applies any the webhook missed, then compares every "
               "open or sending invoice with Stripe and repairs drift. Safe to run at any time; the sidecar also "
               "runs it hourly.")
    if st.button("Reconcile now", key="act_reconcile", type="primary"):
        with st.spinner("Reconciling with Stripe…"):
            report = run_reconcile(session.email)
        text = reconcile_summary(report, now)
        if report.skipped:
            st.info(text)
        elif report.ok:
            st.success(text)
        else:
            st.warning(text)
    with connection() as conn:
        runs = latest_runs(conn, 20)
    rows_table(runs, RUN_COLUMNS, "No reconcile runs yet.", "reconcile_runs_table")
    if runs:
        detail = runs[0]["detail"] or {}
        with st.expander(f"Run {runs[0]['id']}: what it found"):
            for repair in detail.get("repairs", []):
                st.write(f"Fixed invoice #{repair['invoice_id']} ({repair['stripe_invoice_id']}): "
                         f"{repair['reason']} → {repair['to_status']}")
            for invoice_id in detail.get("stuck_sends", []):
                st.write(f"Invoice #{invoice_id} is stuck in sending: press Send to resume it.")
            for missing in detail.get("missing_at_stripe", []):
                st.write(f"Invoice #{missing['invoice_id']} ({missing['stripe_invoice_id']}) is unknown to Stripe "
                         "in this mode.")
            for error in detail.get("errors", []):
                st.write(f"Error: {plain(error)}")
