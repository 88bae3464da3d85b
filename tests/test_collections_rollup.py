"""The Collections daily roll-up (crm.collections_daily): kept current incrementally by the
triggers and the refresh, equal to a rebuild from scratch after every kind of change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from db import queries_collections as q
from ops import seed

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
COLUMNS = ("day", "sent_invoices", "sent_cents", "paid_same_day", "paid_within_hour", "funnel_delivered",
           "funnel_opened", "funnel_clicked", "funnel_paid", "payments", "collected_cents", "fee_cents",
           "paid_invoices", "time_to_pay_buckets", "reminders_sent", "first_reminded", "paid_after_first",
           "disputes_lost_cents", "fees_pending", "refunds", "refunded_cents", "refund_fee_cents",
           "dispute_fee_cents")


def _rows(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    # Days with nothing on them are zero rows inside a run; compare the days that have data,
    # and the weekly medians.
    days = [tuple(r[c] for c in COLUMNS) for r in db.execute(
        "SELECT * FROM crm.collections_daily WHERE sent_invoices + payments + paid_invoices + reminders_sent > 0 "
        "ORDER BY day")]
    weeks = [(r["week"], round(r["median_s"], 6), r["invoices"]) for r in db.execute(
        "SELECT * FROM crm.collections_weekly WHERE invoices > 0 ORDER BY week")]
    return [*days, *weeks]


def _rebuilt(db: psycopg.Connection[Any], tz: str) -> list[tuple[Any, ...]]:
    db.execute("DELETE FROM crm.collections_daily_state")
    assert q.refresh_daily(db, tz) > 0
    return _rows(db)


def test_rollup_bounds_match_the_python_buckets(db: psycopg.Connection[Any]) -> None:
    row = db.execute("SELECT crm.time_to_pay_bounds() AS b").fetchone()
    assert row is not None and tuple(int(b) for b in row["b"]) == q.TIME_TO_PAY_BOUNDS
    assert len(q.TIME_TO_PAY_LABELS) == len(q.TIME_TO_PAY_BOUNDS) + 1


def test_rollup_follows_payments_voids_and_email_tracking(db: psycopg.Connection[Any]) -> None:
    seed.load(db, seed.generate(NOW), NOW)
    tz = "America/Chicago"
    assert q.refresh_daily(db, tz) > 100  # first read: built for this zone
    assert q.refresh_daily(db, tz) == 0  # nothing changed since
    built = _rows(db)
    assert built == _rebuilt(db, tz)

    # A payment today for an invoice sent weeks ago; a void; an email opened for the first time.
    open_inv = db.execute("SELECT id, amount_due_cents, sent_at FROM crm.invoices WHERE status = 'open' "
                          "ORDER BY sent_at LIMIT 1").fetchone()
    assert open_inv is not None
    paid_at = NOW - timedelta(minutes=5)
    db.execute("UPDATE crm.invoices SET status = 'paid', paid_at = %s, amount_paid_cents = amount_due_cents "
               "WHERE id = %s", (paid_at, open_inv["id"]))
    db.execute("INSERT INTO crm.payments (invoice_id, mode, stripe_payment_id, amount_cents, fee_cents, net_cents, "
               "currency, paid_at) VALUES (%s, 'test', 'inpay_rollup_1', %s, 100, %s, 'usd', %s)",
               (open_inv["id"], open_inv["amount_due_cents"], open_inv["amount_due_cents"] - 100, paid_at))
    db.execute("UPDATE crm.invoices SET status = 'void', voided_at = now() WHERE id = "
               "(SELECT id FROM crm.invoices WHERE status = 'open' ORDER BY sent_at DESC LIMIT 1)")
    # A reminder goes out for an open invoice (its first, or a later one).
    db.execute("UPDATE crm.reminders SET status = 'sent', sent_at = %s, resend_id = 'rollup-r1' WHERE id = "
               "(SELECT r.id FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id "
               " WHERE r.status = 'pending' AND i.status = 'open' ORDER BY r.id LIMIT 1)", (NOW - timedelta(hours=1),))
    db.execute("UPDATE crm.email_messages SET first_opened_at = sent_at + interval '1 minute' WHERE id = "
               "(SELECT m.id FROM crm.email_messages m JOIN crm.invoices i ON i.id = m.invoice_id "
               " WHERE m.first_opened_at IS NULL AND i.status = 'open' LIMIT 1)")
    changed = q.refresh_daily(db, tz)
    assert 0 < changed < 40  # only the changed days (and the gaps inside a run), not all 180
    incremental = _rows(db)
    assert incremental != built
    assert incremental == _rebuilt(db, tz)

    # The weekly medians are the exact ones, week by week.
    direct = {r["week"]: (round(r["m"], 6), r["n"]) for r in db.execute(
        "SELECT date_trunc('week', paid_at AT TIME ZONE %s)::date AS week, count(*) AS n, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM paid_at - sent_at)) AS m "
        "FROM crm.invoices WHERE paid_at IS NOT NULL AND sent_at IS NOT NULL GROUP BY 1", (tz,))}
    stored = {r["week"]: (round(r["median_s"], 6), r["invoices"]) for r in db.execute(
        "SELECT * FROM crm.collections_weekly WHERE invoices > 0")}
    assert stored == direct
    today = date(2026, 6, 15)
    t = q.tiles(db, today, datetime(2026, 6, 1, tzinfo=UTC), NOW, tz)
    assert t["payments"] > 0 and t["gross_cents"] >= open_inv["amount_due_cents"]


def test_rollup_is_rebuilt_for_another_time_zone(db: psycopg.Connection[Any]) -> None:
    seed.load(db, seed.generate(NOW), NOW)
    q.refresh_daily(db, "UTC")
    utc = {r[0]: r for r in _rows(db) if len(r) == len(COLUMNS)}
    q.refresh_daily(db, "Asia/Tokyo")
    tokyo = {r[0]: r for r in _rows(db) if len(r) == len(COLUMNS)}
    state = db.execute("SELECT tz FROM crm.collections_daily_state").fetchone()
    assert state == {"tz": "Asia/Tokyo"}
    assert utc != tokyo
    assert sum(r[1] for r in utc.values()) == sum(r[1] for r in tokyo.values())  # same invoices, other days
