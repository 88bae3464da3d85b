"""The pure parts of Send via Stripe: checks, totals, due dates, resume point, keys, the email."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from crm.email.invoice_email import invoice_tags, render_invoice_email
from crm.send import idempotency, rules

TODAY = date(2026, 3, 10)
LINES = [rules.Line("Service call", 1, 8900), rules.Line("Filter", 3, 2500)]


def ctx(**over: Any) -> rules.SendContext:
    base: dict[str, Any] = {
        "status": "draft", "lines": LINES, "customer_email": "pat@example.com", "currency": "usd",
        "due_date": None, "today": TODAY, "from_address": "billing@acme.test", "stripe_mode": "test",
        "stripe_sandboxed": True, "resend_sandboxed": True}
    base.update(over)
    return rules.SendContext(**base)


def test_a_good_draft_has_no_problems() -> None:
    assert rules.sendable_problems(ctx()) == []
    assert rules.total_cents(LINES) == 16400


@pytest.mark.parametrize(("over", "expected"), [
    ({"lines": []}, "no lines"),
    ({"lines": [rules.Line("Free", 2, 0)]}, "total is zero"),
    ({"customer_email": None}, "no email address"),
    ({"customer_email": "not-an-address"}, "is not valid"),
    ({"due_date": date(2026, 3, 9)}, "in the past"),
    ({"from_address": ""}, "From address"),
    ({"status": "open"}, "this one is open"),
    ({"stripe_mode": "live"}, "no live secret key"),
    ({"stripe_mode": "live", "stripe_sandboxed": False}, "no Resend API key"),
    ({"lines": [rules.Line("x", 1, 1)] * 251}, "at most 250 lines"),
])
def test_each_problem_is_named(over: dict[str, Any], expected: str) -> None:
    problems = rules.sendable_problems(ctx(**over))
    assert any(expected in p for p in problems), problems


def test_a_resumed_send_keeps_a_due_date_that_has_since_passed() -> None:
    assert rules.sendable_problems(ctx(status="sending", due_date=date(2026, 3, 9))) == []


def test_due_date_defaults_to_the_payment_terms_and_ends_the_local_day() -> None:
    assert rules.due_date_for(None, TODAY, 14) == date(2026, 3, 24)
    assert rules.due_date_for(date(2026, 4, 1), TODAY, 14) == date(2026, 4, 1)
    # 2026-03-24 23:59:59 in Chicago (CDT, UTC-5) is 2026-03-25 04:59:59 UTC.
    assert rules.stripe_due_timestamp(date(2026, 3, 24), "America/Chicago") == 1774414799


def test_stripe_lines_carry_unit_price_and_quantity() -> None:
    items = rules.stripe_lines(LINES, "usd")
    assert items[1] == {"description": "Filter", "quantity": 3, "price_data": {
        "currency": "usd", "unit_amount": 2500, "product_data": {"name": "Filter"}}}


@pytest.mark.parametrize(("stored", "step"), [
    ({}, "customer"),
    ({"stripe_customer_id": "cus_1"}, "invoice"),
    ({"stripe_customer_id": "cus_1", "stripe_invoice_id": "in_1"}, "lines"),
    ({"stripe_customer_id": "cus_1", "stripe_invoice_id": "in_1", "lines_added": True}, "finalize"),
    ({"stripe_customer_id": "cus_1", "stripe_invoice_id": "in_1", "lines_added": True, "finalized": True}, "email"),
    ({"stripe_customer_id": "cus_1", "stripe_invoice_id": "in_1", "finalized": True, "email_settled": True},
     "complete"),
    ({"stripe_customer_id": "cus_1", "stripe_invoice_id": "in_1", "finalized": True, "resend_email_id": "e"},
     "complete"),
    # Name or email edited in the CRM since Stripe last heard: update the customer before finalizing.
    ({"stripe_customer_id": "cus_1", "customer_synced": False}, "customer"),
    ({"stripe_customer_id": "cus_1", "stripe_invoice_id": "in_1", "customer_synced": False}, "customer"),
    ({"stripe_customer_id": "cus_1", "stripe_invoice_id": "in_1", "finalized": True, "customer_synced": False},
     "email"),
])
def test_next_step_resumes_from_what_is_stored(stored: dict[str, Any], step: str) -> None:
    base: dict[str, Any] = {"stripe_customer_id": None, "stripe_invoice_id": None, "customer_synced": True,
                            "lines_added": False,
                            "finalized": False, "resend_email_id": None, "email_settled": False}
    assert rules.next_step(rules.StoredProgress(**{**base, **stored})) == step


def test_totals_compare_the_total_not_the_amount_due() -> None:
    # A credit balance at Stripe lowers amount_due at finalization; the total is what we sent.
    assert rules.totals_match(100, 100)
    assert not rules.totals_match(100, 105)


def test_keys_are_stable_distinct_and_short_enough() -> None:
    items = rules.stripe_lines(LINES, "usd")
    a = idempotency.lines_key("abc", "test", 7, 0, items)
    assert a == idempotency.lines_key("abc", "test", 7, 0, items)
    assert a != idempotency.lines_key("abc", "test", 7, 1, items)
    assert a != idempotency.lines_key("abc", "test", 7, 0, items[:1])
    digest = idempotency.customer_digest("Dana", "dana@example.com")
    assert idempotency.customer_key("abc", "test", 3, digest) != idempotency.customer_key("xyz", "test", 3, digest)
    # The data sent is in the key: a corrected email is a new request, not "same key, other parameters".
    assert digest != idempotency.customer_digest("Dana", "dana@example.org")
    assert idempotency.customer_key("abc", "test", 3, digest) != idempotency.customer_key(
        "abc", "test", 3, idempotency.customer_digest("Dana", "dana@example.org"))
    assert idempotency.invoice_key("abc", "test", 7, 0, "create") != idempotency.invoice_key("abc", "live", 7, 0,
                                                                                            "create")
    assert len(idempotency.lines_key("f" * 32, "test", 10**12, 99, items)) <= 255


def test_email_is_escaped_in_html_plain_in_text_and_has_the_subject_and_links() -> None:
    email = render_invoice_email(
        business_name="Acme & Co", customer_name="<img src=x onerror=alert(1)>", number="ABC-0001",
        amount_cents=16400, currency="usd", due=date(2026, 3, 24), pay_url="https://pay.example/i/1",
        pdf_url="https://pay.example/i/1/pdf", lines=LINES, memo="Thanks!")
    assert email.subject == "Invoice ABC-0001 from Acme & Co — $164.00 due Mar 24, 2026"
    assert "<img src=x" not in email.html and "&lt;img src=x onerror=alert(1)&gt;" in email.html
    assert "Acme &amp; Co" in email.html
    assert "<img src=x onerror=alert(1)>" in email.text and "Acme & Co" in email.text
    for part in (email.html, email.text):
        assert "https://pay.example/i/1" in part and "https://pay.example/i/1/pdf" in part
        assert "$164.00" in part and "Filter" in part


def test_subject_stays_on_one_line() -> None:
    email = render_invoice_email(business_name="Acme\nEvil: header", customer_name="x", number="N-1",
                                 amount_cents=100, currency="usd", due=date(2026, 1, 2), pay_url="u", pdf_url="p",
                                 lines=LINES)
    assert "\n" not in email.subject


def test_tags_use_only_letters_digits_underscore_and_dash() -> None:
    assert invoice_tags(123) == [{"name": "crm_invoice_id", "value": "123"}, {"name": "kind", "value": "invoice"}]
