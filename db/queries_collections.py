"""Aggregates for the owner's Collections page, computed in SQL.

Each function returns a handful of rows (a tile's numbers, one row per bucket or week),
never the invoices themselves. Windows and 'today' are parameters, so tests fix them.
Weeks and days are cut in the business's time zone.

The windowed charts (invoiced and collected per week, time to pay by bucket, the funnel)
and the tiles' sums read the daily roll-up crm.collections_daily, whole local days, brought
up to date first by `refresh_daily` (only the days that changed are recomputed), as do the
weekly medians (crm.collections_weekly, exact, recomputed for the weeks that changed) and
what reminders did; the open balances, aging and the tiles' rolling 30-day medians read the
tables themselves.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from db.pool import Conn

# The email funnel's stages, in order: the columns the funnel query computes.
FUNNEL_STAGES = ("sent", "delivered", "opened", "clicked", "paid")

# Upper bounds (seconds) of the time-to-pay buckets: minutes to months, roughly log-spaced.
# crm.time_to_pay_bounds() (db/functions/90_collections_daily.sql) holds the same numbers.
TIME_TO_PAY_BOUNDS = (5 * 60, 15 * 60, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
                      60 * 86400)
TIME_TO_PAY_LABELS = ("< 5 min", "5–15 min", "15–60 min", "1–4 h", "4–24 h", "1–3 days", "3–7 days",
                      "7–14 days", "14–30 days", "30–60 days", "60+ days")


def refresh_daily(conn: Conn, tz: str) -> int:
    """Bring crm.collections_daily up to date for the business's time zone: only the local
    days that changed since the last refresh are recomputed (db/functions/90_collections_daily.sql);
    returns how many. Every reader below calls it first."""
    row = conn.execute("SELECT crm.refresh_collections_daily(%s) AS days", (tz,)).fetchone()
    assert row is not None
    return int(row["days"])


def tiles(conn: Conn, today: date, month_start: datetime, now: datetime, tz: str = "UTC") -> dict[str, Any]:
    """Outstanding, overdue, collected this month (gross, refunds, fees, net), medians, DSO inputs,
    and the share of invoices paid the same day they were sent and within an hour (last 30 days
    against the 30 before).

    gross: payments this month less disputes lost this month; refunded: refunds Stripe counts
    (pending or succeeded) made this month; collected = gross - refunded; fees: Stripe's fees of
    this month's payments and refunds, from their balance transactions (`fees_pending` payments
    are still being fetched), and of this month's disputes (Stripe's dispute fee, from the
    dispute's balance transactions); net = collected - fees, what reaches the bank."""
    # The open balances and the exact rolling medians come from the invoices (index-only scans
    # of covering indexes, 0011); the windowed sums from the daily roll-up (local days). This
    # runs on every live refresh of the page.
    refresh_daily(conn, tz)
    row = conn.execute(
        """
        SELECT o.outstanding_cents, o.overdue_cents, o.overdue_count,
               r.gross_cents - r.lost_cents AS gross_cents, r.refunded_cents,
               r.fee_cents + r.refund_fee_cents + r.dispute_fee_cents AS fee_cents,
               r.gross_cents - r.lost_cents - r.refunded_cents - r.fee_cents - r.refund_fee_cents
                 - r.dispute_fee_cents AS net_cents, r.dispute_fee_cents,
               r.gross_cents - r.lost_cents - r.refunded_cents AS collected_cents, r.payments, r.fees_pending,
               r.refunds, r.lost_cents AS disputes_lost_cents,
               t.median_s_last30, t.median_s_prev30, r.invoiced_90d_cents,
               r.sent_last30, r.same_day_last30, r.within_hour_last30,
               r.sent_prev30, r.same_day_prev30, r.within_hour_prev30
        FROM (SELECT coalesce(sum(amount_due_cents - amount_paid_cents), 0) AS outstanding_cents,
                     coalesce(sum(amount_due_cents - amount_paid_cents) FILTER (WHERE due_date < %(today)s), 0)
                       AS overdue_cents,
                     count(*) FILTER (WHERE due_date < %(today)s) AS overdue_count
              FROM crm.invoices WHERE status = 'open') o,
             (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM paid_at - sent_at))
                       FILTER (WHERE paid_at >= %(now)s - interval '30 days') AS median_s_last30,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM paid_at - sent_at))
                       FILTER (WHERE paid_at < %(now)s - interval '30 days') AS median_s_prev30
              FROM crm.invoices WHERE paid_at >= %(now)s - interval '60 days' AND paid_at < %(now)s
               AND sent_at IS NOT NULL) t,
             -- This month (local days), from the roll-up. A lost dispute takes the money back:
             -- collected in the month it was lost.
             (SELECT coalesce(sum(collected_cents) FILTER (WHERE day >= %(month)s), 0) AS gross_cents,
                     coalesce(sum(disputes_lost_cents) FILTER (WHERE day >= %(month)s), 0) AS lost_cents,
                     coalesce(sum(fee_cents) FILTER (WHERE day >= %(month)s), 0) AS fee_cents,
                     coalesce(sum(payments) FILTER (WHERE day >= %(month)s), 0) AS payments,
                     coalesce(sum(fees_pending) FILTER (WHERE day >= %(month)s), 0) AS fees_pending,
                     coalesce(sum(refunded_cents) FILTER (WHERE day >= %(month)s), 0) AS refunded_cents,
                     coalesce(sum(refund_fee_cents) FILTER (WHERE day >= %(month)s), 0) AS refund_fee_cents,
                     coalesce(sum(dispute_fee_cents) FILTER (WHERE day >= %(month)s), 0) AS dispute_fee_cents,
                     coalesce(sum(refunds) FILTER (WHERE day >= %(month)s), 0) AS refunds,
                     coalesce(sum(sent_cents) FILTER (WHERE day > %(today)s - 90), 0) AS invoiced_90d_cents,
                     coalesce(sum(sent_invoices) FILTER (WHERE day > %(today)s - 30), 0) AS sent_last30,
                     coalesce(sum(paid_same_day) FILTER (WHERE day > %(today)s - 30), 0) AS same_day_last30,
                     coalesce(sum(paid_within_hour) FILTER (WHERE day > %(today)s - 30), 0) AS within_hour_last30,
                     coalesce(sum(sent_invoices) FILTER (WHERE day <= %(today)s - 30 AND day > %(today)s - 60), 0)
                       AS sent_prev30,
                     coalesce(sum(paid_same_day) FILTER (WHERE day <= %(today)s - 30 AND day > %(today)s - 60), 0)
                       AS same_day_prev30,
                     coalesce(sum(paid_within_hour) FILTER (WHERE day <= %(today)s - 30 AND day > %(today)s - 60),
                              0) AS within_hour_prev30
              FROM crm.collections_daily
              WHERE day > least(%(today)s - 90, %(month)s::date - 1) AND day <= %(today)s) r
        """,
        {"today": today, "month": month_start.date(), "now": now},
    ).fetchone()
    assert row is not None
    return dict(row)


def _day_window(until: datetime, since: datetime, tz: str) -> tuple[date, date]:
    """[first, last] local days of the half-open window [since, until) cut at local midnights."""
    zone = ZoneInfo(tz)
    return since.astimezone(zone).date(), (until.astimezone(zone) - timedelta(microseconds=1)).date()


def time_to_pay_distribution(conn: Conn, since: datetime, until: datetime, tz: str = "UTC") -> list[dict[str, Any]]:
    """How many invoices paid in the window took how long from send to payment, by bucket."""
    refresh_daily(conn, tz)
    first, last = _day_window(until, since, tz)
    rows = conn.execute(
        """
        SELECT b.ord - 1 AS bucket, sum(b.n) AS invoices
        FROM crm.collections_daily d, unnest(d.time_to_pay_buckets) WITH ORDINALITY AS b(n, ord)
        WHERE d.day BETWEEN %(first)s AND %(last)s
        GROUP BY 1 ORDER BY 1
        """,
        {"first": first, "last": last},
    ).fetchall()
    counts = {int(r["bucket"]): int(r["invoices"]) for r in rows}
    return [{"bucket": i, "label": label, "invoices": counts.get(i, 0)} for i, label in enumerate(TIME_TO_PAY_LABELS)]


def weekly_median_time_to_pay(conn: Conn, since: datetime, until: datetime, tz: str) -> list[dict[str, Any]]:
    """Per local week (Monday) that has payments: the exact median time to pay of the invoices
    paid in it, from crm.collections_weekly (kept with the days; whole weeks)."""
    refresh_daily(conn, tz)
    first, last = _day_window(until, since, tz)
    return conn.execute(
        """
        SELECT week, median_s, invoices FROM crm.collections_weekly
        WHERE week BETWEEN date_trunc('week', %(first)s::date)::date AND %(last)s AND invoices > 0
        ORDER BY week
        """,
        {"first": first, "last": last},
    ).fetchall()


_AGING = """
    CASE WHEN i.due_date IS NULL OR i.due_date >= %(today)s THEN 'current'
         WHEN %(today)s - i.due_date <= 30 THEN '1-30'
         WHEN %(today)s - i.due_date <= 60 THEN '31-60'
         WHEN %(today)s - i.due_date <= 90 THEN '61-90'
         ELSE '90+' END
"""


def aging_by_customer(conn: Conn, today: date, top: int = 15) -> list[dict[str, Any]]:
    """Open balances by customer and aging bucket, for the customers owing the most."""
    return conn.execute(
        """
        WITH open_ar AS (
            SELECT i.customer_id, """ + _AGING + """ AS bucket,
                   i.amount_due_cents - i.amount_paid_cents AS cents
            FROM crm.invoices i WHERE i.status = 'open'
        ), top_customers AS (
            SELECT customer_id, sum(cents) AS total FROM open_ar GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %(top)s
        )
        SELECT c.name AS customer, o.bucket, sum(o.cents) AS cents, t.total AS customer_total
        FROM open_ar o JOIN top_customers t USING (customer_id) JOIN crm.customers c ON c.id = o.customer_id
        GROUP BY c.name, o.customer_id, o.bucket, t.total
        ORDER BY t.total DESC, c.name, o.bucket
        """,
        {"today": today, "top": top},
    ).fetchall()


def aging_totals(conn: Conn, today: date) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT " + _AGING + """ AS bucket, count(*) AS invoices, sum(i.amount_due_cents - i.amount_paid_cents) AS cents
        FROM crm.invoices i WHERE i.status = 'open' GROUP BY 1""",
        {"today": today},
    ).fetchall()


def collected_vs_invoiced_weekly(conn: Conn, since: datetime, until: datetime, tz: str) -> list[dict[str, Any]]:
    """Per week: amount invoiced (sent, not void), amount collected (payments, less that week's
    refunds and the disputes lost that week: they take the money back) and Stripe's fees
    (payments', refunds' and disputes' balance transactions), zero-filled; from the daily roll-up."""
    refresh_daily(conn, tz)
    first, last = _day_window(until, since, tz)
    return conn.execute(
        """
        WITH weeks AS (
            SELECT generate_series(date_trunc('week', %(first)s::date), date_trunc('week', %(last)s::date),
                                   interval '1 week')::date AS week
        ), sums AS (
            SELECT date_trunc('week', day)::date AS week, sum(sent_cents) AS invoiced_cents,
                   sum(collected_cents - disputes_lost_cents - refunded_cents) AS collected_cents,
                   sum(fee_cents + refund_fee_cents + dispute_fee_cents) AS fee_cents
            FROM crm.collections_daily WHERE day BETWEEN %(first)s AND %(last)s GROUP BY 1
        )
        SELECT w.week, coalesce(s.invoiced_cents, 0) AS invoiced_cents,
               coalesce(s.collected_cents, 0) AS collected_cents, coalesce(s.fee_cents, 0) AS fee_cents
        FROM weeks w LEFT JOIN sums s USING (week)
        ORDER BY w.week
        """,
        {"first": first, "last": last},
    ).fetchall()


def funnel(conn: Conn, since: datetime, until: datetime, tz: str = "UTC") -> list[dict[str, Any]]:
    """Invoices sent in the window (not void), and how many of them reached each later stage."""
    refresh_daily(conn, tz)
    first, last = _day_window(until, since, tz)
    row = conn.execute(
        """
        SELECT coalesce(sum(sent_invoices), 0) AS sent, coalesce(sum(funnel_delivered), 0) AS delivered,
               coalesce(sum(funnel_opened), 0) AS opened, coalesce(sum(funnel_clicked), 0) AS clicked,
               coalesce(sum(funnel_paid), 0) AS paid
        FROM crm.collections_daily WHERE day BETWEEN %(first)s AND %(last)s
        """,
        {"first": first, "last": last},
    ).fetchone()
    assert row is not None
    return [{"stage": stage, "invoices": int(row[stage])} for stage in FUNNEL_STAGES]


def reminder_effect(conn: Conn, since: datetime, until: datetime, tz: str = "UTC") -> dict[str, Any]:
    """Reminders sent in the window; invoices whose first reminder went out in it, and how many
    of those were paid after that reminder (from the roll-up, by reminder day)."""
    refresh_daily(conn, tz)
    first, last = _day_window(until, since, tz)
    row = conn.execute(
        """
        SELECT coalesce(sum(reminders_sent), 0) AS reminders_sent,
               coalesce(sum(first_reminded), 0) AS invoices_reminded,
               coalesce(sum(paid_after_first), 0) AS paid_after_reminder
        FROM crm.collections_daily WHERE day BETWEEN %(first)s AND %(last)s
        """,
        {"first": first, "last": last},
    ).fetchone()
    assert row is not None
    return dict(row)


def open_disputes(conn: Conn, limit: int = 50) -> list[dict[str, Any]]:
    """Disputes still open (chargebacks the owner may answer), soonest evidence deadline first."""
    return conn.execute(
        """
        SELECT d.stripe_dispute_id, d.amount_cents, d.currency, d.reason, d.status, d.evidence_due_by, d.opened_at,
               d.invoice_id, coalesce(i.stripe_invoice_number, '#' || i.id) AS number, c.name AS customer
        FROM crm.disputes d
        LEFT JOIN crm.invoices i ON i.id = d.invoice_id LEFT JOIN crm.customers c ON c.id = i.customer_id
        WHERE d.closed_at IS NULL
        ORDER BY d.evidence_due_by NULLS LAST, d.id
        LIMIT %(limit)s
        """,
        {"limit": limit},
    ).fetchall()


def chart_data(conn: Conn, today: date, tz: str) -> dict[str, Any]:
    """Every chart of the Collections page for one local day, with the page's windows
    (90 days, 26 weeks): the page and the benchmark both read exactly this."""
    until = datetime.combine(today + timedelta(days=1), datetime.min.time(), ZoneInfo(tz))
    return {
        "distribution": time_to_pay_distribution(conn, until - timedelta(days=90), until, tz),
        "weekly_median": weekly_median_time_to_pay(conn, until - timedelta(days=182), until, tz),
        "aging": aging_by_customer(conn, today),
        "aging_totals": aging_totals(conn, today),
        "weekly": collected_vs_invoiced_weekly(conn, until - timedelta(weeks=26), until, tz),
        "funnel": funnel(conn, until - timedelta(days=90), until, tz),
        "reminders": reminder_effect(conn, until - timedelta(days=90), until, tz),
    }
