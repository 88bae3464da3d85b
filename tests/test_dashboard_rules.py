"""Pure rules behind the dashboard: input checks, line parsing in cents, collections maths."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from crm.config.integrations import parse_offsets, stripe_key_error, webhook_url_error
from crm.money import collections as rules
from crm.send.lines import Line, parse_lines, price_text, total_cents
from crm.validation import email_error, name_error, phone_error


@pytest.mark.parametrize("good", ["a@b.co", "first.last+tag@sub.example.com", "O'Neil@example.ie"])
def test_good_emails(good: str) -> None:
    assert email_error(good) is None


@pytest.mark.parametrize("bad", ["", "plain", "a@b", "a@@b.com", "a b@c.com", "a@b..com", "a@-b.com", "a@b.c",
                                 "<a@b.com>", "a@b.123"])
def test_bad_emails(bad: str) -> None:
    assert email_error(bad) is not None


def test_optional_email_and_names() -> None:
    assert email_error("  ", required=False) is None
    assert name_error("  ") == "Name is required."
    assert name_error("Tom <script>") == "Name cannot contain < or > (no HTML)."
    assert name_error("x" * 201) is not None
    assert name_error("Zoë & Sons, Inc.") is None
    assert phone_error("(555) 123-4567") is None and phone_error("call me") is not None


def test_lines_total_to_the_cent_without_floats() -> None:
    parsed = parse_lines([
        {"description": "Labor", "quantity": 3, "unit_price": "110.01"},
        {"description": "Part", "quantity": 2.0, "unit_price": 0.1 + 0.2},  # float from the editor: 0.30000000000000004
        {"description": "", "quantity": None, "unit_price": None},  # blank row: skipped
    ])
    assert not parsed.ok
    assert parsed.errors == ["Line 2: unit price: USD amounts have at most 2 decimals (whole minor units)."]
    parsed = parse_lines([
        {"description": "Labor", "quantity": 3, "unit_price": "110.01"},
        {"description": "Part", "quantity": 2.0, "unit_price": 19.99},
        {"description": "Fee", "quantity": "1", "unit_price": "$1,000"},
    ])
    assert parsed.ok and parsed.lines == [Line("Labor", 3, 11001), Line("Part", 2, 1999), Line("Fee", 1, 100000)]
    assert parsed.total_cents == 33003 + 3998 + 100000 == total_cents(parsed.lines)


def test_bad_lines_say_which_row_and_what() -> None:
    parsed = parse_lines([
        {"description": " ", "quantity": 1, "unit_price": "5"},
        {"description": "Pipe", "quantity": -2, "unit_price": "5"},
        {"description": "Valve", "quantity": 1.5, "unit_price": "-3"},
        {"description": "<b>x</b>", "quantity": 1, "unit_price": "abc"},
    ])
    assert parsed.lines == []
    assert parsed.errors == [
        "Line 1: description is required.",
        "Line 2: quantity must be at least 1.",
        "Line 3: quantity must be a whole number; unit price: amounts cannot be negative.",
        "Line 4: description cannot contain < or > (no HTML); unit price: not an amount: 'abc'.",
    ]
    assert parse_lines([]).errors == ["Add at least one line."]
    assert price_text(1999) == "19.99" and price_text(5) == "0.05"


def test_overdue_aging_and_dso() -> None:
    today = date(2026, 3, 31)
    assert rules.days_overdue("open", date(2026, 3, 1), today) == 30
    assert [rules.aging_bucket(date(2026, 3, 31 - d) if d < 31 else date(2026, 1, 1), today)
            for d in (0, 1, 30)] == ["current", "1-30", "1-30"]
    assert rules.aging_bucket(date(2026, 1, 30), today) == "31-60"  # 60 days
    assert rules.aging_bucket(date(2026, 1, 29), today) == "61-90"
    assert rules.aging_bucket(date(2025, 12, 1), today) == "90+"
    assert rules.dso_days(50_000, 300_000) == Decimal("15.0")
    assert rules.dso_days(1, 0) is None
    assert rules.human_duration(600) == "10 min" and rules.human_duration(86400 * 3) == "3.0 days"
    assert rules.change_label(50, 100) == "-50%" and rules.change_label(1, None) is None


def test_integration_inputs() -> None:
    assert parse_offsets("14, 7,30") == ([7, 14, 30], None)
    assert parse_offsets("7,7")[1] == "Each offset only once."
    assert parse_offsets("1,2,3,4,5,6,7")[1] == "At most 6 reminders."
    assert stripe_key_error("live", "sk_test_abcdefghijklmnop") is not None
    assert stripe_key_error("test", "rk_test_abcdefghijklmnop") is None
    assert webhook_url_error("https://crm.example.com/webhooks/stripe") is None
    assert webhook_url_error("http://localhost:8000/webhooks/stripe") is None
    assert webhook_url_error("https://crm.example.com/") is not None
