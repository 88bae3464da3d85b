"""What each dashboard page asks the database for, called the way the page calls it.

`collections_page` mirrors pages/collections_page.py (live tiles + chart_data) and
`invoices_page` mirrors pages/invoices.py (filters' customer list, live tiles, count,
first page of the list, the new-draft job list). The naive versions load every invoice
into a pandas DataFrame and aggregate there: the approach the SQL aggregates replace.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

TZ = "UTC"
PAGE_SIZE = 50


def _clock(now: datetime) -> tuple[date, datetime, datetime]:
    local = now.astimezone(ZoneInfo(TZ))
    today = local.date()
    month_start = datetime(today.year, today.month, 1, tzinfo=ZoneInfo(TZ))
    day_start = datetime(today.year, today.month, today.day, tzinfo=ZoneInfo(TZ))
    return today, month_start, day_start


def collections_page(conn: psycopg.Connection[Any], now: datetime) -> dict[str, Any]:
    """The live tiles, then the chart data, with today changed since the last read (a payment
    has just arrived): each run recomputes today's roll-up row, as the live page does."""
    from db import queries_collections as q

    today, month_start, _ = _clock(now)
    conn.execute("INSERT INTO crm.collections_changes (at) VALUES (%s)", (now,))
    return {"tiles": q.tiles(conn, today, month_start, now, TZ), **q.chart_data(conn, today, TZ)}


def invoices_page(conn: psycopg.Connection[Any], now: datetime) -> dict[str, Any]:
    from db import queries_invoices as q
    from db.customers import customer_choices
    from db.jobs import job_choices

    today, _, day_start = _clock(now)
    f = q.InvoiceFilter(limit=PAGE_SIZE)
    return {
        "customers": customer_choices(conn),
        "tiles": q.live_tiles(conn, today, day_start),
        "total": q.count_invoices(conn, f, today),
        "rows": q.list_invoices(conn, f, today),
        "jobs": job_choices(conn),
    }


def _frame(conn: psycopg.Connection[Any], sql: str) -> Any:
    import pandas as pd

    with conn.cursor() as cur:
        cur.execute(sql)
        cols = [d.name for d in cur.description or []]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def naive_collections(conn: psycopg.Connection[Any], now: datetime) -> dict[str, Any]:
    """Every invoice and payment into DataFrames; tiles, aging and weekly sums in pandas."""
    import pandas as pd

    today, month_start, _ = _clock(now)
    inv = _frame(conn, "SELECT * FROM crm.invoices")
    pay = _frame(conn, "SELECT * FROM crm.payments")
    cust = _frame(conn, "SELECT id, name FROM crm.customers")
    open_ = inv[inv["status"] == "open"].copy()
    open_["balance"] = open_["amount_due_cents"] - open_["amount_paid_cents"]
    due = pd.to_datetime(open_["due_date"])
    open_["days"] = (pd.Timestamp(today) - due).dt.days
    open_["bucket"] = pd.cut(open_["days"].fillna(-1), [-10**6, 0, 30, 60, 90, 10**6],
                             labels=["current", "1-30", "31-60", "61-90", "90+"])
    paid = inv[inv["paid_at"].notna() & inv["sent_at"].notna()]
    ttp = (paid["paid_at"] - paid["sent_at"]).dt.total_seconds()
    recent = pay[(pay["paid_at"] >= month_start) & (pay["paid_at"] < now)]
    top = open_.groupby("customer_id")["balance"].sum().nlargest(15)
    aging = (open_[open_["customer_id"].isin(top.index)].groupby(["customer_id", "bucket"], observed=True)["balance"]
             .sum().reset_index().merge(cust, left_on="customer_id", right_on="id"))
    since = now - timedelta(weeks=26)
    sent = inv[(inv["sent_at"] >= since) & (inv["status"] != "void")]
    weekly = sent.groupby(sent["sent_at"].dt.to_period("W"))["amount_due_cents"].sum()
    return {
        "outstanding": int(open_["balance"].sum()),
        "overdue": int(open_.loc[open_["days"] > 0, "balance"].sum()),
        "collected": int(recent["amount_cents"].sum()),
        "median_ttp": float(ttp.median()) if len(ttp) else None,
        "aging_totals": open_.groupby("bucket", observed=True)["balance"].agg(["count", "sum"]),
        "aging": aging,
        "weekly": weekly,
    }


def naive_invoices(conn: psycopg.Connection[Any], now: datetime) -> dict[str, Any]:
    """Every invoice (with its customer's name) into a DataFrame; tiles, count and first page in pandas."""
    today, _, day_start = _clock(now)
    inv = _frame(conn, "SELECT i.*, c.name AS customer FROM crm.invoices i JOIN crm.customers c "
                       "ON c.id = i.customer_id")
    open_ = inv[inv["status"] == "open"]
    overdue = open_[open_["due_date"] < today]
    page = inv.sort_values(["created_at", "id"], ascending=False).head(PAGE_SIZE)
    return {
        "open": len(open_), "outstanding": int((open_["amount_due_cents"] - open_["amount_paid_cents"]).sum()),
        "overdue": len(overdue), "paid_today": int(inv.loc[inv["paid_at"] >= day_start, "amount_paid_cents"].sum()),
        "total": len(inv), "rows": page.to_dict("records"),
    }


PAGES = {
    "collections": collections_page,
    "invoices": invoices_page,
    "naive_collections": naive_collections,
    "naive_invoices": naive_invoices,
}


def utc_now() -> datetime:
    return datetime.now(UTC)
