"""Customers and Jobs pages (AppTest, real database): create, validate next to the field, edit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from db.customers import CustomerInput, create_customer
from db.jobs import JobInput, create_job
from tests.shown import shown


def _errors(at: Any) -> list[str]:
    return [shown(e.value) for e in at.error]


def _fill_customer(at: Any, name: str, email: str) -> None:
    at.text_input(key="new_customer_name").input(name)
    at.text_input(key="new_customer_email").input(email)
    next(b for b in at.button if b.label == "Create customer").click().run()


def test_bad_email_and_html_name_are_refused_next_to_the_field(db: psycopg.Connection[Any],
                                                                app_as: Callable[..., Any]) -> None:
    at = app_as("staff", "pages/customers.py")
    _fill_customer(at, "<b>Bold</b> Co", "not-an-email")
    assert "Name cannot contain < or > (no HTML)." in _errors(at)
    assert "'not-an-email' is not a valid email address (expected name@example.com)." in _errors(at)
    assert db.execute("SELECT count(*) AS n FROM crm.customers").fetchone() == {"n": 0}


def test_customer_is_created_and_edited(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    at = app_as("staff", "pages/customers.py")
    _fill_customer(at, "Rita Ramos", "rita@example.com")
    assert not _errors(at)
    row = db.execute("SELECT id, name, email, reminders_opt_out FROM crm.customers").fetchone()
    assert row == {"id": 1, "name": "Rita Ramos", "email": "rita@example.com", "reminders_opt_out": False}
    assert at.session_state["open_customer"] == 1
    key = "edit_customer_1"
    at.text_input(key=f"{key}_email").input("rita@@example")
    next(b for b in at.button if b.label == "Save customer").click().run()
    assert any("is not a valid email address" in e for e in _errors(at))
    assert db.execute("SELECT email FROM crm.customers").fetchone() == {"email": "rita@example.com"}
    at.text_input(key=f"{key}_email").input("rita.r@example.com")
    at.checkbox(key=f"{key}_opt_out").check()
    next(b for b in at.button if b.label == "Save customer").click().run()
    assert not _errors(at)
    row = db.execute("SELECT email, reminders_opt_out FROM crm.customers").fetchone()
    assert row == {"email": "rita.r@example.com", "reminders_opt_out": True}


def test_job_is_created_edited_and_completed_by_hand(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    create_customer(db, CustomerInput("Ola Olsen", "ola@example.com"), "test")
    at = app_as("staff", "pages/jobs.py")
    next(b for b in at.button if b.label == "Create job").click().run()
    assert "Title is required." in _errors(at)
    assert db.execute("SELECT count(*) AS n FROM crm.jobs").fetchone() == {"n": 0}
    form_inputs = [t for t in at.text_input if t.label == "Title"]
    form_inputs[0].input("Boiler service")
    next(b for b in at.button if b.label == "Create job").click().run()
    assert not _errors(at)
    assert db.execute("SELECT id, title, status FROM crm.jobs").fetchone() == {
        "id": 1, "title": "Boiler service", "status": "scheduled"}
    status = next(s for s in at.selectbox if s.label == "Status" and "completed" in s.options and s.value == "scheduled"
                  and s.key is None)
    status.select("completed")
    next(b for b in at.button if b.label == "Save job").click().run()
    job = db.execute("SELECT status, completed_at FROM crm.jobs").fetchone()
    assert job is not None and job["status"] == "completed" and job["completed_at"] is not None
    assert any("Completed" in s and "by staff@example.com" in s for s in [shown(x.value) for x in at.success])


def test_job_page_lists_the_jobs_invoices(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    from db import drafts

    customer = create_customer(db, CustomerInput("Pat Park", "pat@example.com"), "test")
    job = create_job(db, JobInput(customer, "Water heater install"), "test")
    drafts.create_draft(db, job, "deposit", None, "usd", "test")
    drafts.create_draft(db, job, "final", None, "usd", "test")
    at = app_as("staff", "pages/jobs.py")
    at.session_state["open_job"] = job
    at.run()
    table = at.dataframe[-1].value
    assert list(table["Kind"]) == ["deposit", "final"]
