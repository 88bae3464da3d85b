"""Money parsing and formatting in integer minor units of each currency."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm.config.integrations import currency_error
from crm.money.amounts import (
    STRIPE_ZERO_DECIMAL,
    MoneyError,
    UnsupportedCurrency,
    currency,
    currency_problem,
    format_cents,
    parse_cents,
    percent_of,
)
from crm.send.lines import parse_lines, price_text


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


# ---- currencies with their own minor unit (Babel's CLDR data, Stripe's unit where they differ)

@pytest.mark.parametrize(("text", "currency", "minor", "shown"), [
    ("5,000", "jpy", 5000, "¥5,000"),          # zero-decimal: yen are the unit Stripe counts
    ("12,500", "krw", 12500, "₩12,500"),
    ("1,234.56", "eur", 123456, "€1,234.56"),
    ("500", "isk", 50000, "ISK500"),           # Babel: 0 decimals; Stripe: hundredths, always 00
    ("12000", "huf", 1200000, "HUF12,000"),    # likewise (Stripe's special cases)
    ("12.34", "twd", 1234, "NT$12.34"),
])
def test_each_currency_uses_its_own_minor_unit(text: str, currency: str, minor: int, shown: str) -> None:
    assert parse_cents(text, currency) == minor
    assert format_cents(minor, currency) == shown


def test_a_zero_decimal_amount_is_never_multiplied_by_100() -> None:
    # The bug: a JPY business typed 5,000 and sent ¥500,000.
    assert parse_cents("5000", "jpy") == 5000
    assert parse_lines([{"description": "Visit", "quantity": 1, "unit_price": "5000"}], "jpy").total_cents == 5000
    assert price_text(5000, "jpy") == "5000" and price_text(50000, "isk") == "500"


@pytest.mark.parametrize(("text", "currency"), [("5000.5", "jpy"), ("500.50", "isk"), ("0.001", "usd")])
def test_fractions_the_currency_does_not_have_are_refused(text: str, currency: str) -> None:
    with pytest.raises(MoneyError, match=r"whole units|at most 2 decimals"):
        parse_cents(text, currency)


@pytest.mark.parametrize("code", ["kwd", "bhd", "jod", "omr", "tnd", "xyz", "xau", "zwd"])
def test_currencies_the_crm_cannot_bill_correctly_are_refused(code: str) -> None:
    assert currency_problem(code) is not None
    assert currency_error(code) is not None
    with pytest.raises(UnsupportedCurrency):
        parse_cents("1", code)


@pytest.mark.parametrize("code", ["usd", "jpy", "eur", "isk", "ugx", "clp", "gbp"])
def test_currencies_stripe_bills_are_accepted(code: str) -> None:
    assert currency_problem(code) is None and currency_error(code) is None


def test_stripe_zero_decimal_currencies_agree_with_babel() -> None:
    assert all(currency(c).exponent == currency(c).digits == 0 for c in STRIPE_ZERO_DECIMAL)
