"""Phone numbers in E.164, read with Google's libphonenumber (the `phonenumbers` package).

A number typed without a country code is read as the business's country's (setting
`business.country`). Pure: no I/O.
"""

from __future__ import annotations

import phonenumbers


class PhoneError(ValueError):
    """The text cannot be a phone number; the message says why, for the field."""


def to_e164(raw: str, country: str = "US") -> str:
    """`raw` as +15125550123; raises PhoneError with a message to show next to the field."""
    text = (raw or "").strip()
    if not text:
        raise PhoneError("Enter a phone number.")
    try:
        parsed = phonenumbers.parse(text, (country or "US").upper())
    except phonenumbers.NumberParseException:
        raise PhoneError(f"“{text[:40]}” is not a phone number.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneError(f"“{text[:40]}” is not a valid phone number"
                         f"{'' if text.startswith('+') else f' in {country.upper()}'}: check the digits, "
                         "or start with + and the country code.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_error(raw: str, country: str = "US") -> str | None:
    """None when `raw` is empty or a valid number; the reason otherwise."""
    if not (raw or "").strip():
        return None
    try:
        to_e164(raw, country)
    except PhoneError as exc:
        return str(exc)
    return None


def display(e164: str | None) -> str:
    """+15125550123 as (512) 555-0123 at home, +44 20 7946 0000 abroad; '' for None."""
    if not e164:
        return ""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    fmt = (phonenumbers.PhoneNumberFormat.NATIONAL if parsed.country_code == 1
           else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(parsed, fmt)
