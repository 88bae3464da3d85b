"""Pure rules for Stripe events, and the SQL status rule held to the same table."""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest

from crm.stripe.event_rules import (
    INVOICE_STATUS_MOVES,
    event_problem,
    invoice_status_may_move,
    mode_of,
)
from db.queries_invoices import REFUND_STATE
from tests import stripe_payloads as sp

STATUSES = ["draft", "sending", "open", "paid", "void", "uncollectible"]


def test_status_never_moves_backwards() -> None:
    assert invoice_status_may_move("open", "paid")
    assert invoice_status_may_move("sending", "paid")
    assert invoice_status_may_move("uncollectible", "paid")  # Stripe lets an uncollectible invoice be paid
    assert not invoice_status_may_move("paid", "open")
    assert not invoice_status_may_move("paid", "void")
    assert not invoice_status_may_move("void", "paid")
    assert not invoice_status_may_move("open", "draft")
    assert not invoice_status_may_move("open", "open")
    assert set(INVOICE_STATUS_MOVES) == set(STATUSES)


def test_sql_status_rule_matches_the_python_table(db: Any) -> None:
    for current, target in product(STATUSES, STATUSES):
        row = db.execute("SELECT crm.invoice_status_may_move(%s, %s) AS ok", (current, target)).fetchone()
        assert row["ok"] == invoice_status_may_move(current, target), (current, target)


def test_mode_of() -> None:
    assert (mode_of(True), mode_of(False)) == ("live", "test")


def test_refund_state_is_one_sql_expression_for_the_list_and_the_invoice_page(db: Any) -> None:
    rows = db.execute("SELECT " + REFUND_STATE + " AS state FROM (VALUES (10000, 0, 1), (10000, 2500, 2), "
                      "(10000, 10000, 3)) AS i(amount_paid_cents, amount_refunded_cents, n) ORDER BY n").fetchall()
    assert [r["state"] for r in rows] == [None, "partially refunded", "fully refunded"]


def test_a_current_event_shape_has_no_problem() -> None:
    assert event_problem(sp.event("invoice.paid", sp.invoice("in_1", status="paid", amount_paid=100))) is None


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda e: e.pop("id"), "event id"),
    (lambda e: e.update(id="in_123"), "event id"),
    (lambda e: e.update(type=""), "event type"),
    (lambda e: e.update(livemode="false"), "livemode"),
    (lambda e: e.update(data={"object": []}), "data.object"),
    (lambda e: e["data"]["object"].update(amount_paid=-1), "amount_paid"),
    (lambda e: e["data"]["object"].update(amount_paid="100"), "amount_paid"),
    (lambda e: e["data"]["object"].update(amount_due=True), "amount_due"),
])
def test_event_problems(mutate: Any, problem: str) -> None:
    evt = sp.event("invoice.paid", sp.invoice("in_1", status="paid", amount_paid=100))
    mutate(evt)
    found = event_problem(evt)
    assert found is not None and problem in found


def test_not_an_object() -> None:
    assert event_problem([1, 2]) == "body is not a JSON object"
