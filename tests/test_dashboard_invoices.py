"""Invoices page (AppTest against the real test database): list, new draft, line editor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from db import drafts
from db.customers import CustomerInput, create_customer
from db.jobs import JobInput, create_job
from tests.shown import shown


def _job(db: psycopg.Connection[Any], name: str = "Dana Diaz") -> int:
    customer = create_customer(db, CustomerInput(name, "dana@example.com"), "test")
    return create_job(db, JobInput(customer, "Furnace repair"), "test")


def _texts(at: Any, kind: str) -> list[str]:
    return [shown(e.value) for e in getattr(at, kind)]


def test_staff_creates_a_draft_from_a_job(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    job_id = _job(db)
    at = app_as("staff", "pages/invoices.py")
    assert "Invoices" in _texts(at, "title")
    form_button = next(b for b in at.button if b.label == "Create draft")
    form_button.click().run()
    assert not at.exception
    row = db.execute("SELECT id, job_id, status, kind, created_by FROM crm.invoices").fetchone()
    assert row is not None and row["job_id"] == job_id and row["status"] == "draft"
    assert any(f"Draft #{row['id']} created" in s for s in _texts(at, "success"))
    assert at.session_state["open_invoice"] == row["id"]
    assert any(f"Invoice #{row['id']}" in h for h in _texts(at, "subheader"))


def test_editing_lines_saves_totals_to_the_cent(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    job_id = _job(db)
    invoice_id = drafts.create_draft(db, job_id, "standard", None, "usd", "test")
    at = app_as("staff", "pages/invoices.py")
    at.session_state["open_invoice"] = invoice_id
    at.run()
    at.session_state[f"lines_{invoice_id}"] = {
        "edited_rows": {},
        "added_rows": [
            {"description": "Diagnostic visit", "quantity": 1, "unit_price": "89.99"},
            {"description": "Labor (hours)", "quantity": 3, "unit_price": "110.01"},
            {"description": "Filter", "quantity": 7, "unit_price": "0.07"},
        ],
        "deleted_rows": [],
    }
    at.run()
    assert any("Total: $420.51" in m for m in _texts(at, "markdown")), _texts(at, "markdown")
    at.button(key=f"save_lines_{invoice_id}").click().run()
    assert not at.exception
    lines = db.execute(
        "SELECT description, quantity, unit_amount_cents, amount_cents FROM crm.invoice_lines WHERE invoice_id = %s "
        "ORDER BY position", (invoice_id,)).fetchall()
    assert [(r["quantity"], r["unit_amount_cents"], r["amount_cents"]) for r in lines] == [
        (1, 8999, 8999), (3, 11001, 33003), (7, 7, 49)]
    total = db.execute("SELECT amount_due_cents FROM crm.invoices WHERE id = %s", (invoice_id,)).fetchone()
    assert total == {"amount_due_cents": 42051}
    assert any("total $420.51" in s for s in _texts(at, "success"))


def test_bad_lines_are_refused_and_nothing_is_saved(db: psycopg.Connection[Any], app_as: Callable[..., Any]) -> None:
    job_id = _job(db)
    invoice_id = drafts.create_draft(db, job_id, "standard", None, "usd", "test")
    at = app_as("staff", "pages/invoices.py")
    at.session_state["open_invoice"] = invoice_id
    at.run()
    at.session_state[f"lines_{invoice_id}"] = {
        "edited_rows": {},
        "added_rows": [
            {"description": "", "quantity": 1, "unit_price": "10"},
            {"description": "Pipe", "quantity": -1, "unit_price": "10"},
            {"description": "Valve", "quantity": 1, "unit_price": "12.345"},
        ],
        "deleted_rows": [],
    }
    at.run()
    at.button(key=f"save_lines_{invoice_id}").click().run()
    assert _texts(at, "error") == [
        "Line 1: description is required.",
        "Line 2: quantity must be at least 1.",
        "Line 3: unit price: USD amounts have at most 2 decimals (whole minor units).",
    ]
    assert "Nothing was saved." in _texts(at, "caption")
    assert db.execute("SELECT count(*) AS n FROM crm.invoice_lines").fetchone() == {"n": 0}


def test_list_filters_overdue_and_shows_the_email_signal(db: psycopg.Connection[Any],
                                                         app_as: Callable[..., Any]) -> None:
    job_id = _job(db)
    late = drafts.create_draft(db, job_id, "deposit", None, "usd", "test")
    fresh = drafts.create_draft(db, job_id, "final", None, "usd", "test")
    for inv, due, sid in ((late, "2020-01-01", "in_late"), (fresh, "2999-01-01", "in_fresh")):
        db.execute("UPDATE crm.invoices SET status = 'open', mode = 'test', stripe_invoice_id = %s, due_date = %s, "
                   "amount_due_cents = 12345, sent_at = now() WHERE id = %s", (sid, due, inv))
    db.execute("INSERT INTO crm.email_messages (kind, invoice_id, idempotency_key, from_address, to_address, subject, "
               "status, first_opened_at, first_clicked_at) VALUES ('invoice', %s, 'k1', 'a@b.co', 'c@d.co', 's', "
               "'delivered', now(), now())", (late,))
    at = app_as("staff", "pages/invoices.py")
    at.selectbox(key="inv_status").select("overdue").run()
    at.toggle(key="inv_more_columns").set_value(True).run()
    table = at.dataframe[0].value
    assert list(table["ID"]) == [late]
    status, days = table.iloc[0]["Status"].split()
    assert status == "overdue" and int(days.rstrip("d")) > 2000 and table.iloc[0]["Email / attention"] == "clicked"
    assert table.iloc[0]["Amount"] == "$123.45"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Outstanding"] == "$246.90" and labels["Overdue"] == "$123.45"


def test_ui_fix_2_a_drafts_tiles_and_confirm_come_from_its_lines(db: psycopg.Connection[Any],
                                                                  app_as: Callable[..., Any]) -> None:
    """Issue 22 item 2, in the page the owner sees: a draft whose stored amount_due is 0 (as the demo's
    are) shows its lines' $345.00 as Amount due and Remaining, and the confirm says what the email
    will say. Fails on the old code: both tiles read $0.00 and the confirm asked "Send $0.00 to …?"."""
    invoice_id = drafts.create_draft(db, _job(db, "Aria Hall"), "standard", None, "usd", "test")
    db.execute("INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
               "VALUES (%s, 0, 'Leak repair', 1, 15000), (%s, 1, 'Parts', 1, 19500)", (invoice_id, invoice_id))
    db.execute("UPDATE crm.invoices SET amount_due_cents = 0 WHERE id = %s", (invoice_id,))
    at = app_as("owner", "pages/invoices.py")
    at.session_state["open_invoice"] = invoice_id
    at.run()
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Amount due"] == "$345.00" and tiles["Remaining"] == "$345.00", tiles
    assert f"Invoice #{invoice_id} · draft" in _texts(at, "subheader")
    next(b for b in at.button if b.label == "Send via Stripe").click().run()
    confirm = [w for w in _texts(at, "warning") if w.startswith("Email Aria Hall")]
    assert confirm == ["Email Aria Hall (dana@example.com) an invoice for **$345.00** (2 lines) with a pay link? "
                       "Stripe finalizes the invoice, so its lines can no longer change."], _texts(at, "warning")
