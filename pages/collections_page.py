"""Collections (owner): live tiles (paid the same day and within the hour first), time to pay,
AR aging, collected vs invoiced, the email-to-payment funnel, what reminders did, and the
accountant's export. Every number comes from SQL aggregates."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import streamlit as st

from crm.money import collections as rules
from crm.money.accounting_export import ExportError, build_export
from db import queries_collections as q
from db.pool import connection
from ui import charts
from ui.session import require_owner
from ui.widgets import LIVE_REFRESH, clock, frame, money, plural, settings, table

require_owner()
current = settings()
currency = str(current["business.currency"])
st.title("Collections")


@st.fragment(run_every=LIVE_REFRESH)
def live_tiles() -> None:
    now = clock(current)
    with connection() as conn:
        t = q.tiles(conn, now.today, now.month_start, now.now, now.tz)
    dso = rules.dso_days(int(t["outstanding_cents"]), int(t["invoiced_90d_cents"]))
    # The promise of pay links first: paid the same day the invoice went out, or within the hour.
    top = st.columns(4)
    for col, key, label in ((top[0], "same_day", "Paid same day"), (top[1], "within_hour", "Paid within 1 h")):
        last = rules.share_percent(int(t[f"{key}_last30"]), int(t["sent_last30"]))
        prev = rules.share_percent(int(t[f"{key}_prev30"]), int(t["sent_prev30"]))
        col.metric(label, rules.share_label(last), rules.points_change(last, prev),
                   help=f"Of the {t['sent_last30']} invoices sent in the last 30 days (by the day they were sent); "
                        f"the change is against the 30 days before: {rules.share_label(prev)} of {t['sent_prev30']}.")
    top[2].metric("Median time to pay", rules.human_duration(t["median_s_last30"]),
                  rules.change_label(t["median_s_last30"], t["median_s_prev30"]), delta_color="inverse",
                  help="Invoices paid in the last 30 days, from sent to paid; the change is against the 30 days "
                       f"before ({rules.human_duration(t['median_s_prev30'])}).")
    top[3].metric("DSO", "—" if dso is None else f"{dso} days", help=rules.DSO_FORMULA)
    row2 = st.columns(4)
    lost = int(t["disputes_lost_cents"])
    row2[0].metric("Outstanding", money(t["outstanding_cents"], currency))
    row2[1].metric("Overdue", money(t["overdue_cents"], currency), plural(t["overdue_count"], "invoice"),
                   delta_color="off")
    row2[2].metric("Collected this month", money(t["collected_cents"], currency), plural(t["payments"], "payment"),
                   delta_color="off", help="Payments this month less the refunds made and the disputes lost this "
                                           "month.")
    row2[3].metric("Net of Stripe fees", money(t["net_cents"], currency), f"fees {money(t['fee_cents'], currency)}",
                   delta_color="off", help="Collected less Stripe's fees (from each payment's and refund's balance "
                                           "transaction): what reaches the bank.")
    details = [f"This month: {money(t['gross_cents'], currency)} paid",
               f"{money(t['refunded_cents'], currency)} refunded"]
    if lost:
        details.append(f"{money(lost, currency)} lost to disputes")
    if t["fees_pending"]:
        details.append(f"fees of {plural(t['fees_pending'], 'payment')} still being fetched")
    st.caption(", ".join(details) + f". Last 30 days against the 30 before. {rules.DSO_FORMULA}. Live: refreshes "
               f"every {LIVE_REFRESH}, updated {now.local:%H:%M:%S} {now.tz_label}.")


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
    table(frame([{**r, "number": r["number"] or "not matched yet", "at_stake": money(r["amount_cents"], r["currency"]),
                  "state": r["status"].replace("_", " ")} for r in rows],
                {"number": "Invoice", "customer": "Customer", "at_stake": "At stake", "reason": "Reason",
                 "state": "Status", "evidence_due_by": "Evidence due by", "stripe_dispute_id": "Dispute"},
                clock(current).tz), key="open_disputes")


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
    table(frame([{"stage": r["stage"].capitalize(), "invoices": r["invoices"]} for r in data["funnel"]],
                {"stage": "Stage", "invoices": "Invoices"}, now.tz), key="funnel_table")
with right:
    st.subheader("Reminders (last 90 days)")
    r = data["reminders"]
    st.metric("Reminders sent", int(r["reminders_sent"]))
    st.metric("Invoices reminded", int(r["invoices_reminded"]))
    st.metric("Paid after a reminder", int(r["paid_after_reminder"]))

st.subheader("Accountant export")
st.caption("Invoices, payments, Stripe fees, refunds and disputes for a date range, as CSV files for QuickBooks "
           "Online (Settings → Import data: invoices.csv as Invoices, the others as Journal entries). The README "
           "says which column holds what.")
last_month_end = now.today.replace(day=1) - timedelta(days=1)
c1, c2 = st.columns(2)
start = c1.date_input("From", value=last_month_end.replace(day=1), key="export_from")
end = c2.date_input("To (included)", value=last_month_end, key="export_to")
if st.button("Prepare export", key="export_prepare", icon=":material/table_view:"):
    try:
        with connection() as conn:
            result = build_export(conn, start, end, now.tz)
    except ExportError as exc:
        st.error(str(exc))
    else:
        st.session_state["export_ready"] = (f"{start:%Y-%m-%d}_{end:%Y-%m-%d}", result.zip_bytes(), result.summary())
ready = st.session_state.get("export_ready")
if ready:
    label, data, summary = ready
    for line in summary:
        st.caption(line)
    st.download_button("Download the CSV files (zip)", data, file_name=f"quickbooks-export-{label}.zip",
                       mime="application/zip", type="primary", icon=":material/download:", key="export_download")
