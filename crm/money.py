"""Money as integer minor units: parsing what people type and formatting what they see.

Never a float: amounts typed as text go through Decimal and must be whole cents.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_SYMBOLS = {"usd": "$", "cad": "CA$", "aud": "A$", "eur": "€", "gbp": "£"}


class MoneyError(ValueError):
    pass


def parse_cents(text: str | int | Decimal) -> int:
    """'1,234.50' -> 123450. Rejects negatives, fractions of a cent and non-numbers."""
    if isinstance(text, int):
        value = Decimal(text)
    elif isinstance(text, Decimal):
        value = text
    else:
        cleaned = text.strip().replace(",", "").lstrip("$€£")
        if not cleaned:
            raise MoneyError("enter an amount")
        try:
            value = Decimal(cleaned)
        except InvalidOperation as exc:
            raise MoneyError(f"not an amount: {text!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not an amount: {text!r}")
    if value < 0:
        raise MoneyError("amounts cannot be negative")
    cents = value * 100
    if cents != cents.to_integral_value():
        raise MoneyError("amounts are in whole cents")
    return int(cents)


def format_cents(cents: int, currency: str = "usd") -> str:
    """123450 -> '$1,234.50'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(int(cents)), 100)
    symbol = _SYMBOLS.get(currency.lower(), currency.upper() + " ")
    return f"{sign}{symbol}{whole:,}.{frac:02d}"


def percent_of(cents: int, basis_points: int) -> int:
    """A share of an amount, rounded half up to the cent (for fees and estimates)."""
    return int((Decimal(cents) * basis_points / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# ISO 4217 currencies without minor units (Stripe's list of zero-decimal currencies).
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
                          "xaf", "xof", "xpf"})


def decimal_amount(minor_units: int, currency: str = "usd") -> str:
    """Integer minor units as a plain decimal string in the currency's units, for files other
    programs read: 123450 usd -> '1234.50', 5000 jpy -> '5000', -250 usd -> '-2.50'. No
    symbol, no thousands separator, never a float."""
    cents = int(minor_units)
    if currency.lower() in ZERO_DECIMAL:
        return str(cents)
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"
