"""Activity: Stripe events with their outcome, emails and their events, reminders and
their states, each with filters; reconcile runs and a button to run one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm.reconcile import latest_runs, run_reconcile
from db import queries_activity as q
from db.pool import connection
from ui.session import require_login

session = require_login()
st.title("Activity")
stripe_tab, email_tab, reminder_tab, reconcile_tab = st.tabs(
    ["Stripe events", "Emails", "Reminders", "Reconcile with Stripe"])


def table(rows: list[dict], empty: str) -> None:
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.info(empty)


with stripe_tab:
    a, b = st.columns(2)
    outcome = a.selectbox("Outcome", ["all", *q.STRIPE_OUTCOMES], key="act_outcome",
                          help="duplicate: delivered more than once (applied once)")
    type_prefix = b.text_input("Event type starts with", placeholder="invoice.", key="act_type")
    with connection() as conn:
        events = q.stripe_events(conn, None if outcome == "all" else outcome, type_prefix)
    table(events, "No Stripe events yet.")

with email_tab:
    a, b = st.columns(2)
    kind = a.selectbox("Kind", ["all", *q.EMAIL_KINDS], key="act_email_kind")
    status = b.selectbox("Status", ["all", "pending", "scheduled", "sent", "delivered", "delivery_delayed", "bounced",
                                    "complained", "failed", "suppressed", "cancelled"], key="act_email_status")
    with connection() as conn:
        mails = q.emails(conn, None if kind == "all" else kind, None if status == "all" else status)
        mail_events = q.email_events(conn)
    table(mails, "No emails yet.")
    st.markdown("**Email events** (Resend webhooks)")
    table(mail_events, "No email events yet.")

with reminder_tab:
    state = st.selectbox("State", ["all", *q.REMINDER_STATUSES], key="act_reminder_state")
    with connection() as conn:
        reminders = q.reminders(conn, None if state == "all" else state)
    table(reminders, "No reminders.")
    st.caption("resend_cancel: requested = being cancelled at Resend; done = cancelled there; too_late = Resend had "
               "already sent it; possibly_sent = its hand-off was never recorded and it was too close to its send "
               "time to check safely, so it may have gone out (see last_error).")

with reconcile_tab:
    st.caption("Lists Stripe's events since the last run and applies any the webhook missed, then compares every "
               "open or sending invoice with Stripe and repairs drift. Safe to run at any time; the sidecar also "
               "runs it hourly.")
    if st.button("Reconcile now", key="act_reconcile", type="primary"):
        with st.spinner("Reconciling with Stripe…"):
            report = run_reconcile(session.email)
        text = "\n".join(report.lines())
        if report.skipped:
            st.info(text)
        elif report.ok:
            st.success(text)
        else:
            st.warning(text)
    with connection() as conn:
        runs = latest_runs(conn, 20)
    table([{k: r[k] for k in ("id", "started_at", "actor", "mode", "status", "events_seen", "events_applied",
                              "events_duplicate", "invoices_checked", "invoices_repaired", "errors")}
           for r in runs], "No reconcile runs yet.")
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
                st.write(f"Error: {error}")
