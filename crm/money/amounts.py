"""Money as integer minor units of its currency: parsing what people type, formatting what they see.

Never a float: amounts typed as text go through Decimal. Each currency has its own minor
unit, and it is the unit Stripe counts in, because that is what we send: an amount stored
here is the `unit_amount` / `amount` Stripe gets and the `amount_paid` it sends back.

Where the exponents come from (no table of our own for ISO 4217):
- Babel's CLDR currency data (`babel.numbers.get_currency_precision`) says how many decimals
  a currency has in use (USD 2, JPY 0, KWD 3), and formats amounts (`format_currency`).
- Stripe's list of zero-decimal currencies (docs.stripe.com/currencies#zero-decimal) decides
  where Stripe counts whole units; every other currency Stripe takes in hundredths, even
  where CLDR says it has no decimals in use (ISK, HUF, COP, IDR...: Stripe's "special
  cases"; for ISK Stripe requires the hundredths to be 00). Where the two disagree, Stripe's
  unit decides what we store and send, and Babel's decimals decide what people may type:
  such an amount is in whole units (500 ISK is typed "500", stored and sent as 50000).
- Refused: codes Babel does not know as some territory's tender today (XAU, XTS, retired
  codes), and currencies with more decimals than Stripe's unit
  (Stripe's three-decimal currencies BHD, JOD, KWD, OMR, TND need the last digit 0 and
  special handling in Stripe's payment flows; the CRM does not bill them).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision, get_territory_currencies

# docs.stripe.com/currencies#zero-decimal: amounts in the currency's own unit.
STRIPE_ZERO_DECIMAL = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
})
STRIPE_TWO_DECIMAL_EXPONENT = 2
FORMAT_LOCALE = "en_US"


class MoneyError(ValueError):
    pass


class UnsupportedCurrency(MoneyError):
    pass


@dataclass(frozen=True)
class Currency:
    code: str  # upper case, as Babel and ISO 4217 spell it (the database keeps it lower case)
    exponent: int  # Stripe's minor unit: stored amount = value x 10**exponent
    digits: int  # decimals people may type and see (Babel's), never more than `exponent`

    @property
    def step(self) -> int:
        """Stored amounts are multiples of this (100 for ISK: whole krónur in Stripe's hundredths)."""
        return 10 ** (self.exponent - self.digits)


@lru_cache(maxsize=512)
def currency(code: str) -> Currency:
    """What the CRM knows of a currency code ('usd', 'JPY'); raises UnsupportedCurrency."""
    upper = str(code or "").strip().upper()
    if len(upper) != 3 or not upper.isalpha() or upper not in _legal_tender():
        raise UnsupportedCurrency(f"{code!r} is not a currency in use today (use a 3-letter ISO code like usd).")
    digits = int(get_currency_precision(upper))
    exponent = 0 if upper in STRIPE_ZERO_DECIMAL else STRIPE_TWO_DECIMAL_EXPONENT
    if digits > exponent:
        raise UnsupportedCurrency(f"{upper} has {digits} decimals, more than Stripe's unit for it: the CRM cannot "
                                  "bill it correctly.")
    return Currency(upper, exponent, digits)


@lru_cache(maxsize=1)
def _legal_tender() -> frozenset[str]:
    """Currencies some territory uses today, by Babel's CLDR data (not gold, test or retired codes)."""
    codes: set[str] = set()
    for territory in Locale("en").territories:
        codes.update(get_territory_currencies(str(territory), tender=True))
    return frozenset(codes)


def currency_problem(code: str) -> str | None:
    """Why Settings must refuse this currency, or None when the CRM bills it correctly."""
    try:
        currency(code)
    except UnsupportedCurrency as exc:
        return str(exc)
    return None


def parse_cents(text: str | int | Decimal, currency_code: str = "usd") -> int:
    """What was typed, in the currency's minor units: '1,234.50' USD -> 123450, '5,000' JPY -> 5000.

    Rejects negatives, more decimals than the currency has, and non-numbers. An int or a
    Decimal is an amount in the currency's units (12 USD), not minor units.
    """
    cur = currency(currency_code)
    if isinstance(text, bool):
        raise MoneyError(f"not an amount: {text!r}")
    if isinstance(text, int):
        value = Decimal(text)
    elif isinstance(text, Decimal):
        value = text
    else:
        cleaned = text.strip().replace(",", "").lstrip("$€£¥")
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
    shown = value.scaleb(cur.digits)
    if shown != shown.to_integral_value():
        raise MoneyError(f"{cur.code} amounts are in whole units (no decimals)" if cur.digits == 0
                         else f"{cur.code} amounts have at most {cur.digits} decimals (whole minor units)")
    return int(value.scaleb(cur.exponent))


def _pattern(decimals: int) -> str:
    return "¤#,##0" + ("." + "0" * decimals if decimals else "")


def format_cents(cents: int, currency_code: str = "usd") -> str:
    """Minor units as people read them: 123450 USD -> '$1,234.50', 5000 JPY -> '¥5,000'.

    A currency the CRM does not bill (stored before Settings checked it) is shown as its
    code and the stored minor units, never guessed at."""
    minor = int(cents)
    try:
        cur = currency(currency_code)
    except UnsupportedCurrency:
        return f"{minor:,} {str(currency_code).upper()} (minor units)"
    # An amount that is not a whole number of shown units (it came from elsewhere) shows exactly.
    decimals = cur.digits if minor % cur.step == 0 else cur.exponent
    value = Decimal(minor).scaleb(-cur.exponent)
    return format_currency(value, cur.code, format=_pattern(decimals), locale=FORMAT_LOCALE, currency_digits=False)


def amount_text(cents: int, currency_code: str = "usd") -> str:
    """What the line editor shows for a stored amount: plain, no symbol or grouping ('149.00', '5000')."""
    minor = int(cents)
    try:
        cur = currency(currency_code)
    except UnsupportedCurrency:
        return str(minor)
    decimals = cur.digits if minor % cur.step == 0 else cur.exponent
    value = Decimal(minor).scaleb(-cur.exponent)
    return f"{value:.{decimals}f}"


def percent_of(cents: int, basis_points: int) -> int:
    """A share of an amount, rounded half up to the minor unit (for fees and estimates)."""
    return int((Decimal(cents) * basis_points / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def decimal_amount(minor_units: int, currency_code: str = "usd") -> str:
    """Integer minor units as a plain decimal string in the currency's units, for files other
    programs read: 123450 usd -> '1234.50', 5000 jpy -> '5000', -250 usd -> '-2.50'. Every
    decimal of Stripe's unit is kept (exact); no symbol, no thousands separator, never a float."""
    minor = int(minor_units)
    exponent = currency(currency_code).exponent
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10 ** exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}"
