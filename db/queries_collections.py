"""Aggregates for the owner's Collections page, computed in SQL.

Each function returns a handful of rows (a tile's numbers, one row per bucket or week),
never the invoices themselves. Windows and 'today' are parameters, so tests fix them.
Weeks are cut in the business's time zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from db.pool import Conn

# The email funnel's stages, in order: the columns the funnel query computes.
FUNNEL_STAGES = ("sent", "delivered", "opened", "clicked", "paid")

# Upper bounds (seconds) of the time-to-pay buckets: minutes to months, roughly log-spaced.
TIME_TO_PAY_BOUNDS = (5 * 60, 15 * 60, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400,
                      60 * 86400)
TIME_TO_PAY_LABELS = ("< 5 min", "5–15 min", "15–60 min", "1–4 h", "4–24 h", "1–3 days", "3–7 days",
                      "7–14 days", "14–30 days", "30–60 days", "60+ days")


@contextmanager
def _without_jit(conn: Conn) -> Iterator[None]:
    """Plan and run the enclosed query with JIT compilation off.

    Postgres JIT-compiles any plan costed over jit_above_cost (100,000 by default); these
    aggregates over a few hundred thousand index-only rows cross it, and at 1M invoices the
    compilation took 20-190 ms per query, more than the execution it sped up. SET LOCAL ends
    with the transaction (a savepoint inside the caller's, or its own in autocommit).
    """
    with conn.transaction():
        conn.execute("SET LOCAL jit = off")
        yield


def tiles(conn: Conn, today: date, month_start: datetime, now: datetime) -> dict[str, Any]:
    """Outstanding, overdue, collected this month (gross, fees, net), medians, DSO inputs."""
    # One pass per source, each an index-only scan of a covering index (0011): the open
    # balances, 60 days of time to pay (both medians), 90 days of sent invoices, this
    # month's payments. This runs on every live refresh of the page.
    row = conn.execute(
        """
        SELECT o.outstanding_cents, o.overdue_cents, o.overdue_count,
               p.gross_cents - d.lost_cents AS gross_cents, p.fee_cents,
               p.gross_cents - d.lost_cents - p.fee_cents AS net_cents, p.payments, d.lost_cents AS disputes_lost_cents,
               t.median_s_last30, t.median_s_prev30, s.invoiced_90d_cents
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
             (SELECT coalesce(sum(amount_due_cents), 0) AS invoiced_90d_cents FROM crm.invoices
              WHERE sent_at >= %(now)s - interval '90 days' AND sent_at < %(now)s
                AND status IN ('open', 'paid', 'uncollectible')) s,
             (SELECT coalesce(sum(amount_cents), 0) AS gross_cents, coalesce(sum(fee_cents), 0) AS fee_cents,
                     count(*) AS payments
              FROM crm.payments WHERE paid_at >= %(month)s AND paid_at < %(now)s) p,
             -- A lost dispute takes the money back: collected in the month it was lost.
             (SELECT coalesce(sum(amount_cents), 0) AS lost_cents FROM crm.disputes
              WHERE status = 'lost' AND closed_at >= %(month)s AND closed_at < %(now)s) d
        """,
        {"today": today, "month": month_start, "now": now},
    ).fetchone()
    assert row is not None
    return dict(row)


def time_to_pay_distribution(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """How many invoices paid in the window took how long from send to payment, by bucket."""
    rows = conn.execute(
        """
        SELECT width_bucket(extract(epoch FROM paid_at - sent_at)::float8, %(bounds)s::float8[]) AS bucket,
               count(*) AS invoices
        FROM crm.invoices
        WHERE paid_at >= %(since)s AND paid_at < %(until)s AND sent_at IS NOT NULL
        GROUP BY 1 ORDER BY 1
        """,
        {"bounds": list(TIME_TO_PAY_BOUNDS), "since": since, "until": until},
    ).fetchall()
    counts = {int(r["bucket"]): int(r["invoices"]) for r in rows}
    return [{"bucket": i, "label": label, "invoices": counts.get(i, 0)} for i, label in enumerate(TIME_TO_PAY_LABELS)]


def weekly_median_time_to_pay(conn: Conn, since: datetime, until: datetime, tz: str) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT date_trunc('week', paid_at AT TIME ZONE %(tz)s)::date AS week,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM paid_at - sent_at)) AS median_s,
               count(*) AS invoices
        FROM crm.invoices
        WHERE paid_at >= %(since)s AND paid_at < %(until)s AND sent_at IS NOT NULL
        GROUP BY 1 ORDER BY 1
        """,
        {"since": since, "until": until, "tz": tz},
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
    """Per week: amount invoiced (sent) and amount collected (payments), zero-filled."""
    with _without_jit(conn):
        rows = conn.execute(
            """
            WITH weeks AS (
                SELECT generate_series(date_trunc('week', %(since)s AT TIME ZONE %(tz)s),
                                       date_trunc('week', %(until)s AT TIME ZONE %(tz)s),
                                       interval '1 week')::date AS week
            ), invoiced AS (
                SELECT date_trunc('week', sent_at AT TIME ZONE %(tz)s)::date AS week, sum(amount_due_cents) AS cents
                FROM crm.invoices WHERE sent_at >= %(since)s AND sent_at < %(until)s AND status <> 'void'
                GROUP BY 1
            ), collected AS (
                SELECT week, sum(cents) AS cents FROM (
                    SELECT date_trunc('week', paid_at AT TIME ZONE %(tz)s)::date AS week, amount_cents AS cents
                    FROM crm.payments WHERE paid_at >= %(since)s AND paid_at < %(until)s
                    UNION ALL  -- lost disputes take money back in the week they were lost
                    SELECT date_trunc('week', closed_at AT TIME ZONE %(tz)s)::date, -amount_cents
                    FROM crm.disputes WHERE status = 'lost' AND closed_at >= %(since)s AND closed_at < %(until)s
                ) moves GROUP BY 1
            )
            SELECT w.week, coalesce(i.cents, 0) AS invoiced_cents, coalesce(c.cents, 0) AS collected_cents
            FROM weeks w LEFT JOIN invoiced i USING (week) LEFT JOIN collected c USING (week)
            ORDER BY w.week
            """,
            {"since": since, "until": until, "tz": tz},
        ).fetchall()
    return rows


def funnel(conn: Conn, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Invoices sent in the window, and how many of them reached each later stage."""
    with _without_jit(conn):
        row = conn.execute(
            """
            SELECT count(*) AS sent, count(*) FILTER (WHERE m.delivered) AS delivered,
                   count(*) FILTER (WHERE m.opened) AS opened, count(*) FILTER (WHERE m.clicked) AS clicked,
                   count(*) FILTER (WHERE i.paid_at IS NOT NULL) AS paid
            FROM crm.invoices i
            -- Per sent invoice, its invoice emails by invoice_id (an index-only lookup), so the
            -- cost follows the window rather than every invoice email ever sent.
            LEFT JOIN LATERAL (
                SELECT bool_or(e.delivered_at IS NOT NULL) AS delivered,
                       bool_or(e.first_opened_at IS NOT NULL) AS opened,
                       bool_or(e.first_clicked_at IS NOT NULL) AS clicked
                FROM crm.email_messages e WHERE e.invoice_id = i.id AND e.kind = 'invoice'
            ) m ON true
            WHERE i.sent_at >= %(since)s AND i.sent_at < %(until)s AND i.status <> 'void'
            """,
            {"since": since, "until": until},
        ).fetchone()
    assert row is not None
    return [{"stage": stage, "invoices": int(row[stage])} for stage in FUNNEL_STAGES]


def reminder_effect(conn: Conn, since: datetime, until: datetime) -> dict[str, Any]:
    """Reminders sent in the window; invoices that got one, and how many were paid after it."""
    row = conn.execute(
        """
        WITH first_reminder AS (
            SELECT r.invoice_id, min(r.sent_at) AS first_sent, count(*) AS sent
            FROM crm.reminders r
            WHERE r.status = 'sent' AND r.sent_at >= %(since)s AND r.sent_at < %(until)s
            GROUP BY 1
        )
        SELECT coalesce(sum(f.sent), 0) AS reminders_sent, count(*) AS invoices_reminded,
               count(*) FILTER (WHERE i.paid_at > f.first_sent) AS paid_after_reminder
        FROM first_reminder f JOIN crm.invoices i ON i.id = f.invoice_id
        """,
        {"since": since, "until": until},
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
        "distribution": time_to_pay_distribution(conn, until - timedelta(days=90), until),
        "weekly_median": weekly_median_time_to_pay(conn, until - timedelta(days=182), until, tz),
        "aging": aging_by_customer(conn, today),
        "aging_totals": aging_totals(conn, today),
        "weekly": collected_vs_invoiced_weekly(conn, until - timedelta(weeks=26), until, tz),
        "funnel": funnel(conn, until - timedelta(days=90), until),
        "reminders": reminder_effect(conn, until - timedelta(days=90), until),
    }
