"""Money parsing and formatting in integer cents."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm.money import MoneyError, format_cents, parse_cents, percent_of


@pytest.mark.parametrize(
    ("text", "cents"),
    [("12", 1200), ("12.5", 1250), ("1,234.56", 123456), ("$0.01", 1), (" 7.00 ", 700), (Decimal("0.10"), 10)],
)
def test_parse(text: str, cents: int) -> None:
    assert parse_cents(text) == cents


@pytest.mark.parametrize("text", ["-1", "1.005", "abc", "", "nan", "inf"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_cents(text)


def test_no_float_rounding_drift() -> None:
    # 0.1 + 0.2 in floats is 0.30000000000000004; in cents it is exact.
    assert parse_cents("0.10") + parse_cents("0.20") == parse_cents("0.30")


def test_format() -> None:
    assert format_cents(123456) == "$1,234.56"
    assert format_cents(5, "eur") == "€0.05"
    assert format_cents(-250) == "-$2.50"


def test_stripe_fee_rounding() -> None:
    assert percent_of(10000, 290) == 290
    assert percent_of(1050, 290) == 30  # 30.45 -> 30
