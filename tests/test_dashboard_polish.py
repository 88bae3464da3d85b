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
