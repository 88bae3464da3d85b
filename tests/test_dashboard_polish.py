"""Dashboard polish (issue 14): a row click opens what it shows, tables have human labels,
blanks rather than 'None', and times in the business's time zone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from db import drafts
from db.customers import CustomerInput, create_customer
from db.jobs import JobInput, create_job


def _select_row(at: Any, key: str, row: int) -> None:
    """What a click on a row of st.dataframe(on_select='rerun') leaves in the session."""
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_clicking_an_invoice_row_opens_the_invoice(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    customer = create_customer(db, CustomerInput("Dana Diaz", "dana@example.com"), "test")
    job = create_job(db, JobInput(customer, "Furnace repair"), "test")
    first = drafts.create_draft(db, job, "deposit", None, "usd", "test")
    second = drafts.create_draft(db, job, "final", None, "usd", "test")
    at = app_as("staff", "pages/invoices.py")
    listed = at.dataframe[0].value
    assert list(listed["Invoice"]) == [f"draft #{second}", f"draft #{first}"]  # newest first
    _select_row(at, "invoice_table", 1)
    assert at.session_state["open_invoice"] == first
    assert any(f"Invoice #{first}" in h.value for h in at.subheader)


def _cells(at: Any) -> list[tuple[str, list[str], list[Any]]]:
    """Every rendered table: its column labels and every cell value."""
    out = []
    for df in at.dataframe:
        frame = df.value
        out.append((str(df.key), [str(c) for c in frame.columns], [v for col in frame.columns for v in frame[col]]))
    return out


def _assert_clean_tables(at: Any, page: str) -> int:
    """No 'None' (or NaN) in any cell, no raw column names (snake_case) as labels."""
    import math

    tables = _cells(at)
    for key, columns, values in tables:
        for label in columns:
            assert "_" not in label and label[:1].isupper(), f"{page} {key}: raw column label {label!r}"
        for v in values:
            assert v is not None and str(v) not in ("None", "nan", "NaT", "<NA>"), f"{page} {key}: {v!r}"
            assert not (isinstance(v, float) and math.isnan(v)), f"{page} {key}: NaN"
    return len(tables)


def test_no_none_and_no_raw_labels_in_any_table(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    from ops import seed

    seed.seed_demo(db)
    # Rows with blanks of every kind: a draft (no number, no due date), a reconcile run, an email event.
    customer = create_customer(db, CustomerInput("Blank Fields", None), "test")
    drafts.create_draft(db, create_job(db, JobInput(customer, "Inspection"), "test"), "standard", None, "usd", "test")
    db.execute("INSERT INTO crm.worker_runs (worker, last_run_at) VALUES ('reminder_dispatch', now())")
    checked = 0
    for page in ("pages/invoices.py", "pages/jobs.py", "pages/customers.py", "pages/activity.py",
                 "pages/collections_page.py", "pages/settings.py", "pages/users.py"):
        at = app_as("owner", page)
        checked += _assert_clean_tables(at, page)
    # One of each opened too: an open demo invoice, a customer with open invoices, a job.
    inv = db.execute("SELECT id, customer_id, job_id FROM crm.invoices WHERE status = 'open' LIMIT 1").fetchone()
    assert inv is not None
    for page, key, value in (("pages/invoices.py", "open_invoice", inv["id"]),
                             ("pages/customers.py", "open_customer", inv["customer_id"]),
                             ("pages/jobs.py", "open_job", inv["job_id"])):
        at = app_as("owner", page)
        at.session_state[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        checked += _assert_clean_tables(at, page)
    assert checked >= 15


def test_clicking_a_customer_then_their_invoice(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    older = create_customer(db, CustomerInput("Older Customer", "older@example.com"), "test")
    newer = create_customer(db, CustomerInput("Newer Customer", "newer@example.com"), "test")
    db.execute("UPDATE crm.customers SET created_at = now() - interval '1 day' WHERE id = %s", (older,))
    invoice = drafts.create_draft(db, create_job(db, JobInput(older, "Boiler"), "test"), "standard", None, "usd", "t")
    at = app_as("staff", "pages/customers.py")
    assert list(at.dataframe[0].value["Name"]) == ["Newer Customer", "Older Customer"]  # newest first
    assert any("Newest first" in c.value for c in at.caption)
    _select_row(at, "customer_table", 1)
    assert at.session_state["open_customer"] == older != newer
    assert any(h.value == "Older Customer" for h in at.subheader)
    _select_row(at, "customer_invoices_table", 0)
    assert at.session_state["open_invoice"] == invoice


def test_clicking_a_job_row_opens_the_job(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    customer = create_customer(db, CustomerInput("Pat Park", "pat@example.com"), "test")
    first = create_job(db, JobInput(customer, "Water heater install"), "test")
    create_job(db, JobInput(customer, "Drain cleaning"), "test")
    at = app_as("staff", "pages/jobs.py")
    assert list(at.dataframe[0].value["Title"]) == ["Drain cleaning", "Water heater install"]
    _select_row(at, "job_table", 1)
    assert at.session_state["open_job"] == first
    assert any(f"Job #{first}" in h.value for h in at.subheader)


def test_times_are_shown_in_the_business_time_zone(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    from crm.config.settings import save_setting

    save_setting(db, "business.timezone", "Asia/Tokyo")
    db.execute("INSERT INTO crm.stripe_events (id, type, mode, outcome, received_at, payload) VALUES "
               "('evt_tz_1', 'invoice.paid', 'test', 'unmatched', '2026-03-01 15:30:00+00', '{}')")
    at = app_as("staff", "pages/activity.py")
    events = at.dataframe[0].value
    assert list(events["Received"]) == ["2026-03-02 00:30"]  # 15:30 UTC is 00:30 the next day in Tokyo
    assert any("Asia/Tokyo" in c.value for c in at.caption)
