"""Collections (owner): live tiles, time to pay, AR aging, collected vs invoiced, the
email-to-payment funnel and what reminders did. Every number comes from SQL aggregates."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from crm import collections as rules
from db import queries_collections as q
from db.pool import connection
from ui import charts
from ui.session import require_owner
from ui.widgets import LIVE_REFRESH, clock, money, settings

require_owner()
current = settings()
currency = str(current["business.currency"])
st.title("Collections")


@st.fragment(run_every=LIVE_REFRESH)
def live_tiles() -> None:
    now = clock(current)
    with connection() as conn:
        t = q.tiles(conn, now.today, now.month_start, now.now)
    dso = rules.dso_days(int(t["outstanding_cents"]), int(t["invoiced_90d_cents"]))
    row1 = st.columns(4)
    row1[0].metric("Outstanding", money(t["outstanding_cents"], currency))
    row1[1].metric("Overdue", money(t["overdue_cents"], currency), f"{t['overdue_count']} invoices",
                   delta_color="off")
    row1[2].metric("Median time to pay (30 days)", rules.human_duration(t["median_s_last30"]),
                   rules.change_label(t["median_s_last30"], t["median_s_prev30"]), delta_color="inverse",
                   help=f"Previous 30 days: {rules.human_duration(t['median_s_prev30'])}")
    row1[3].metric("DSO", "—" if dso is None else f"{dso} days", help=rules.DSO_FORMULA)
    row2 = st.columns(4)
    lost = int(t["disputes_lost_cents"])
    row2[0].metric("Collected this month (gross)", money(t["gross_cents"], currency),
                   f"{t['payments']} payments" + (f", {money(lost, currency)} lost to disputes" if lost else ""),
                   delta_color="off", help="Payments received, less disputes lost this month.")
    row2[1].metric("Stripe fees", money(t["fee_cents"], currency))
    row2[2].metric("Net", money(t["net_cents"], currency))
    row2[3].caption(f"{rules.DSO_FORMULA}. Live: refreshes every {LIVE_REFRESH}, updated {now.local:%H:%M:%S}.")


@st.cache_data(ttl=30, show_spinner=False)
def chart_data(today: date, tz: str) -> dict[str, Any]:
    """The chart aggregates for one local day (pure reads; cached briefly)."""
    with connection() as conn:
        return q.chart_data(conn, today, tz)


live_tiles()


@st.fragment(run_every=LIVE_REFRESH)
def live_disputes() -> None:
    with connection() as conn:
        rows = q.open_disputes(conn)
    if not rows:
        return
    st.subheader("Open disputes")
    st.caption("Chargebacks the customer's bank opened: answer each in Stripe's Dashboard before its evidence "
               "deadline, or the money stays with the customer.")
    st.dataframe(pd.DataFrame([{
        "Invoice": r["number"] or "not matched yet", "Customer": r["customer"] or "", "At stake":
        money(r["amount_cents"], r["currency"]), "Reason": r["reason"] or "", "Status": r["status"].replace("_", " "),
        "Evidence due by": r["evidence_due_by"], "Dispute": r["stripe_dispute_id"],
    } for r in rows]), hide_index=True, width="stretch", key="open_disputes")


live_disputes()
now = clock(current)
data = chart_data(now.today, now.tz)

st.subheader("Time from send to payment")
left, right = st.columns(2)
with left:
    st.caption("Invoices paid in the last 90 days, by how long they took (minutes to months).")
    st.altair_chart(charts.time_to_pay(data["distribution"]), width="stretch")
with right:
    st.caption("Weekly median, last 26 weeks (log scale): from days down to minutes.")
    if data["weekly_median"]:
        st.altair_chart(charts.weekly_median(data["weekly_median"]), width="stretch")
    else:
        st.info("No payments yet.")

st.subheader("Receivables aging")
totals = {r["bucket"]: r for r in data["aging_totals"]}
cols = st.columns(len(rules.AGING_BUCKETS))
for col, bucket in zip(cols, rules.AGING_BUCKETS, strict=True):
    row = totals.get(bucket)
    col.metric(f"{bucket} days" if bucket != "current" else "Current", money(row["cents"] if row else 0, currency),
               f"{row['invoices'] if row else 0} invoices", delta_color="off")
if data["aging"]:
    st.altair_chart(charts.aging(data["aging"]), width="stretch")

st.subheader("Collected against invoiced, per week")
st.altair_chart(charts.collected_vs_invoiced(data["weekly"]), width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Funnel (sent in the last 90 days)")
    st.altair_chart(charts.funnel(data["funnel"]), width="stretch")
    st.dataframe(pd.DataFrame(data["funnel"]), hide_index=True)
with right:
    st.subheader("Reminders (last 90 days)")
    r = data["reminders"]
    st.metric("Reminders sent", int(r["reminders_sent"]))
    st.metric("Invoices reminded", int(r["invoices_reminded"]))
    st.metric("Paid after a reminder", int(r["paid_after_reminder"]))
