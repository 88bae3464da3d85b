"""Altair charts for the Collections page, built from the small frames the SQL returns."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from crm.money.collections import AGING_BUCKETS
from db.queries_collections import FUNNEL_STAGES


def time_to_pay(rows: list[dict[str, Any]]) -> alt.Chart:
    frame = pd.DataFrame(rows)
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("label:N", sort=list(frame["label"]), title="Time from send to payment (log-spaced buckets)"),
        y=alt.Y("invoices:Q", title="Invoices paid"),
        tooltip=["label", "invoices"],
    )


def weekly_median(rows: list[dict[str, Any]]) -> alt.Chart:
    frame = pd.DataFrame(rows)
    frame["median_hours"] = frame["median_s"].astype(float) / 3600
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("week:T", title="Week"),
        y=alt.Y("median_hours:Q", scale=alt.Scale(type="log"), title="Median hours to pay (log scale)"),
        tooltip=["week:T", alt.Tooltip("median_hours:Q", format=".2f"), "invoices:Q"],
    )


def aging(rows: list[dict[str, Any]]) -> alt.Chart:
    frame = pd.DataFrame(rows)
    frame["dollars"] = frame["cents"].astype(int) / 100  # display only
    return alt.Chart(frame).mark_bar().encode(
        y=alt.Y("customer:N", sort=alt.EncodingSortField("customer_total", order="descending"), title=None),
        x=alt.X("dollars:Q", title="Open balance ($)"),
        color=alt.Color("bucket:N", sort=list(AGING_BUCKETS), scale=alt.Scale(domain=list(AGING_BUCKETS),
                        range=["#4c9a2a", "#f2c14e", "#f78154", "#d1495b", "#7a1f2b"]), title="Days past due"),
        order=alt.Order("bucket_order:Q"),
        tooltip=["customer", "bucket", alt.Tooltip("dollars:Q", format="$,.2f")],
    ).transform_calculate(bucket_order=f"indexof({list(AGING_BUCKETS)!r}, datum.bucket)")


def collected_vs_invoiced(rows: list[dict[str, Any]]) -> alt.Chart:
    frame = pd.DataFrame(rows)
    columns = [c for c in ("invoiced_cents", "collected_cents", "fee_cents") if c in frame]
    long = frame.melt(id_vars=["week"], value_vars=columns, var_name="series", value_name="cents")
    long["dollars"] = long["cents"].astype(int) / 100
    long["series"] = long["series"].str.replace("_cents", "").replace({"collected": "collected (net of refunds)",
                                                                       "fee": "Stripe fees"})
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("week:T", title="Week"), y=alt.Y("dollars:Q", title="$"), color=alt.Color("series:N", title=None),
        tooltip=["week:T", "series", alt.Tooltip("dollars:Q", format="$,.2f")],
    )


def funnel(rows: list[dict[str, Any]]) -> alt.Chart:
    frame = pd.DataFrame(rows)
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("invoices:Q", title="Invoices"), y=alt.Y("stage:N", sort=list(FUNNEL_STAGES), title=None),
        tooltip=["stage", "invoices"],
    )
