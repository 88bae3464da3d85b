"""Collections aggregates (SQL) checked against the demo business computed in Python,
and the owner-only Collections page."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from crm.money import collections as rules
from db import queries_collections as q
from ops import seed

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TODAY = date(2026, 6, 15)


@pytest.fixture
def demo(db: psycopg.Connection[Any]) -> list[seed.DemoCustomer]:
    people = seed.generate(NOW)
    seed.load(db, people, NOW)
    return people


def _invoices(people: list[seed.DemoCustomer]) -> list[seed.DemoInvoice]:
    return [inv for p in people for j in p.jobs for inv in j.invoices]


def test_tiles_match_the_demo_business(db: psycopg.Connection[Any], demo: list[seed.DemoCustomer]) -> None:
    invoices = _invoices(demo)
    month = datetime(2026, 6, 1, tzinfo=UTC)
    t = q.tiles(db, TODAY, month, NOW)
    open_ = [i for i in invoices if i.status == "open"]
    assert t["outstanding_cents"] == sum(i.total for i in open_)
    overdue = [i for i in open_ if i.due_date and i.due_date < TODAY]
    assert (t["overdue_cents"], t["overdue_count"]) == (sum(i.total for i in overdue), len(overdue))
    paid_month = [i for i in invoices if i.paid_at and month <= i.paid_at < NOW]
    assert t["gross_cents"] == sum(i.total for i in paid_month)
    assert t["fee_cents"] == sum(seed._fee(i.total) for i in paid_month)
    assert t["net_cents"] == t["gross_cents"] - t["fee_cents"]
    last30 = [(i.paid_at - i.sent_at).total_seconds() for i in invoices
              if i.paid_at and i.sent_at and NOW - timedelta(days=30) <= i.paid_at < NOW]
    assert t["median_s_last30"] == pytest.approx(statistics.median(last30), abs=1e-3)
    # The seed's promise: paid the same (local) day as sent, and within an hour, by send day.
    for window, first, last in (("last30", TODAY - timedelta(days=29), TODAY),
                                ("prev30", TODAY - timedelta(days=59), TODAY - timedelta(days=30))):
        sent = [i for i in invoices if i.sent_at and i.status != "void" and first <= i.sent_at.date() <= last]
        assert t[f"sent_{window}"] == len(sent) > 0
        assert t[f"same_day_{window}"] == sum(1 for i in sent if i.paid_at and i.paid_at.date() == i.sent_at.date())
        assert t[f"within_hour_{window}"] == sum(1 for i in sent
                                                 if i.paid_at and i.paid_at - i.sent_at <= timedelta(hours=1))
    assert 0 < t["within_hour_last30"] <= t["same_day_last30"]


def test_aging_buckets_add_up_to_outstanding(db: psycopg.Connection[Any], demo: list[seed.DemoCustomer]) -> None:
    invoices = [i for i in _invoices(demo) if i.status == "open"]
    totals = {r["bucket"]: int(r["cents"]) for r in q.aging_totals(db, TODAY)}
    expected: dict[str, int] = {}
    for inv in invoices:
        bucket = rules.aging_bucket(inv.due_date, TODAY)
        expected[bucket] = expected.get(bucket, 0) + inv.total
    assert totals == expected
    by_customer = q.aging_by_customer(db, TODAY, top=1000)
    assert sum(int(r["cents"]) for r in by_customer) == sum(expected.values())


def test_distribution_funnel_and_reminders(db: psycopg.Connection[Any], demo: list[seed.DemoCustomer]) -> None:
    invoices = _invoices(demo)
    # The roll-up counts whole local days: the window is cut at midnights.
    until = datetime(2026, 6, 16, tzinfo=UTC)
    since = until - timedelta(days=90)
    paid = [i for i in invoices if i.paid_at and i.sent_at and since <= i.paid_at < until]
    dist = q.time_to_pay_distribution(db, since, until)
    assert [d["label"] for d in dist] == list(q.TIME_TO_PAY_LABELS)
    assert sum(d["invoices"] for d in dist) == len(paid)
    under_5_min = len([i for i in paid if i.paid_at and i.sent_at and (i.paid_at - i.sent_at).total_seconds() < 300])
    assert dist[0]["invoices"] == under_5_min
    funnel = {r["stage"]: r["invoices"] for r in q.funnel(db, since, until)}
    sent = [i for i in invoices if i.sent_at and since <= i.sent_at < until and i.status != "void"]
    assert funnel["sent"] == len(sent) == funnel["delivered"]
    assert funnel["paid"] == sum(1 for i in sent if i.paid_at)
    assert funnel["sent"] >= funnel["opened"] >= funnel["paid"] > 0
    weekly = q.collected_vs_invoiced_weekly(db, since, until, "UTC")
    assert sum(int(w["collected_cents"]) for w in weekly) == sum(i.total for i in paid)
    effect = q.reminder_effect(db, NOW - timedelta(days=400), NOW)
    assert effect["reminders_sent"] == sum(i.reminders_sent for i in invoices)
    assert 0 < effect["paid_after_reminder"] <= effect["invoices_reminded"]


def test_owner_sees_collections(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    seed.seed_demo(db)
    at = app_as("owner", "pages/collections_page.py")
    labels = {m.label: m.value for m in at.metric}
    assert labels["Outstanding"].startswith("$") and labels["Outstanding"] != "$0.00"
    assert labels["Days to collect (DSO)"].endswith("days")
    assert any("DSO = outstanding receivables" in c.value for c in at.caption)
    assert not at.error


def test_staff_is_refused_owner_pages_even_by_url(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    at = app_as("staff")
    assert at.title[0].value == "Invoices"
    for page in ("pages/collections_page.py", "pages/settings.py", "pages/users.py"):
        # Not even in a staff session's navigation.
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)
        # Reached directly (as a URL would run the file), the page refuses before rendering anything.
        from streamlit.testing.v1 import AppTest

        from tests.fixtures.dashboard import ROOT, session_for

        direct = AppTest.from_file(str(ROOT / page), default_timeout=60)
        direct.session_state["crm_session"] = session_for("staff", 2)
        direct.run()
        assert [e.value for e in direct.error] == ["This page is for the owner only."]
        assert not direct.title and not direct.metric


def test_owner_page_is_refused_when_the_session_becomes_staff(db: psycopg.Connection[Any],
                                                               app_as: Callable[..., Any],
                                                               dashboard_users: dict[str, int]) -> None:
    from tests.fixtures.dashboard import session_for

    at = app_as("owner", "pages/settings.py")
    assert at.title[0].value == "Settings"
    at.session_state["crm_session"] = session_for("staff", dashboard_users["staff"])
    at.run()
    assert [t.value for t in at.title] != ["Settings"]
    assert not any("Stripe" in s.value for s in at.subheader)
