"""Activity: Stripe events with their outcome, emails and their events, reminders and
their states, each with filters."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm.ui.session import require_login
from db import queries_activity as q
from db.pool import connection

require_login()
st.title("Activity")
stripe_tab, email_tab, reminder_tab = st.tabs(["Stripe events", "Emails", "Reminders"])


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
