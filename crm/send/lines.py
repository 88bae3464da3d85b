"""Invoice lines as typed in the dashboard's table editor: validation and totals in minor units.

`parse_lines` takes the editor's rows (description, quantity, unit price as text or a
number) and returns either clean `Line`s or one message per bad row; nothing partial.
Prices go through Decimal(str(x)) because the editor hands numbers back as floats, and are
parsed in the invoice's currency (crm.money.amounts: ¥5,000 is 5000, $5,000 is 500000).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from crm.money.amounts import MoneyError, amount_text, parse_cents
from crm.validation import text_error

MAX_LINES = 250  # Stripe's limit of items per invoice
MAX_QUANTITY = 100_000
MAX_UNIT_CENTS = 100_000_000_00  # in minor units, whatever the currency


@dataclass(frozen=True)
class Line:
    description: str
    quantity: int
    unit_amount_cents: int

    @property
    def amount_cents(self) -> int:
        return self.quantity * self.unit_amount_cents


@dataclass(frozen=True)
class ParsedLines:
    lines: list[Line]
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def total_cents(self) -> int:
        return total_cents(self.lines)


def total_cents(lines: Iterable[Line]) -> int:
    return sum(line.amount_cents for line in lines)


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN from an emptied editor cell
        return True
    return isinstance(value, str) and not value.strip()


def parse_quantity(value: Any) -> int:
    if _blank(value):
        raise ValueError("quantity is required")
    if isinstance(value, bool):
        raise ValueError("quantity must be a whole number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"quantity {value!r} is not a number") from exc
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError("quantity must be a whole number")
    if number <= 0:
        raise ValueError("quantity must be at least 1")
    if number > MAX_QUANTITY:
        raise ValueError(f"quantity must be at most {MAX_QUANTITY:,}")
    return int(number)


def parse_unit_price(value: Any, currency: str = "usd") -> int:
    if _blank(value):
        raise ValueError("unit price is required")
    if isinstance(value, bool):
        raise ValueError("unit price must be an amount")
    try:
        cents = parse_cents(value if isinstance(value, (int, str)) else Decimal(str(value)), currency)
    except MoneyError as exc:
        raise ValueError(f"unit price: {exc}") from exc
    except InvalidOperation as exc:
        raise ValueError(f"unit price {value!r} is not an amount") from exc
    if cents > MAX_UNIT_CENTS:
        raise ValueError("unit price is too large")
    return cents


def parse_lines(rows: Iterable[Mapping[str, Any]], currency: str = "usd") -> ParsedLines:
    """Rows with keys description, quantity, unit_price (in `currency`); fully blank rows are skipped."""
    lines: list[Line] = []
    errors: list[str] = []
    for n, row in enumerate(rows, start=1):
        desc_raw, qty_raw, price_raw = row.get("description"), row.get("quantity"), row.get("unit_price")
        if all(_blank(v) for v in (desc_raw, qty_raw, price_raw)):
            continue
        problems: list[str] = []
        description = "" if _blank(desc_raw) else str(desc_raw).strip()
        if not description:
            problems.append("description is required")
        else:
            msg = text_error(description, "description", max_len=500)
            if msg:
                problems.append(msg.rstrip("."))
        quantity = unit = 0
        try:
            quantity = parse_quantity(qty_raw)
        except ValueError as exc:
            problems.append(str(exc))
        try:
            unit = parse_unit_price(price_raw, currency)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            errors.append(f"Line {n}: " + "; ".join(problems) + ".")
        else:
            lines.append(Line(description, quantity, unit))
    if not lines and not errors:
        errors.append("Add at least one line.")
    if len(lines) > MAX_LINES:
        errors.append(f"At most {MAX_LINES} lines per invoice.")
    return ParsedLines(lines if not errors else [], errors)


def price_text(cents: int, currency: str = "usd") -> str:
    """What the editor shows for a stored unit price: plain, no symbol, the currency's decimals."""
    return amount_text(cents, currency)
