"""Pure checks behind Settings: key shapes, webhook URL, reminder offsets,
business settings. (The Stripe events the endpoint subscribes to: crm/stripe/event_types.py.)

Each check returns a message for its field (None when fine) or the parsed value.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

from crm.money.amounts import currency_problem
from crm.reminders.schedule import offsets_problem

MODE_NOTE = (
    "Switching mode changes which Stripe key and webhook signing secret are used for new sends. "
    "Invoices already sent stay in the mode they were sent in, and events from the other mode never "
    "touch them. Live mode charges real cards."
)


def stripe_key_error(mode: str, key: str) -> str | None:
    key = key.strip()
    if not key:
        return "Enter a key."
    prefixes = (f"sk_{mode}_", f"rk_{mode}_")
    if not key.startswith(prefixes):
        return f"A {mode}-mode key starts with sk_{mode}_ or rk_{mode}_."
    if len(key) < 20 or not re.fullmatch(r"[A-Za-z0-9_]+", key):
        return "That does not look like a complete Stripe key."
    return None


def resend_key_error(key: str) -> str | None:
    key = key.strip()
    if not key:
        return "Enter a key."
    if not key.startswith("re_") or len(key) < 12 or not re.fullmatch(r"[A-Za-z0-9_]+", key):
        return "A Resend API key starts with re_ and has no spaces."
    return None


def webhook_url_error(url: str) -> str | None:
    parsed = urlparse(url.strip())
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        return "Enter a full URL, e.g. https://crm.example.com/webhooks/stripe."
    local = parsed.hostname in ("localhost", "127.0.0.1")
    if parsed.scheme == "http" and not local:
        return "Stripe only delivers to https:// URLs (http is fine for localhost and the sandbox)."
    if not parsed.path.endswith("/webhooks/stripe"):
        return "The sidecar listens on /webhooks/stripe: the URL should end with it."
    return None


def parse_offsets(text: str) -> tuple[list[int] | None, str | None]:
    """'7, 14, 30' -> [7, 14, 30], within crm/reminders/schedule.py's limits."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        return None, "Enter at least one offset, e.g. 7, 14, 30."
    try:
        values = [int(p) for p in parts]
    except ValueError:
        return None, "Offsets are whole numbers of days, separated by commas."
    problem = offsets_problem(values)
    return (None, problem) if problem else (sorted(values), None)



def currency_error(code: str) -> str | None:
    """Settings refuses a currency the CRM cannot bill correctly (crm.money.amounts.currency_problem)."""
    if not re.fullmatch(r"[a-z]{3}", code.strip().lower()):
        return "A currency is a 3-letter code like usd."
    return currency_problem(code)


def email_domain(address: str) -> str:
    """'Acme <billing@acme.com>' -> 'acme.com'."""
    match = re.search(r"@([A-Za-z0-9.-]+)", address)
    return match.group(1).lower() if match else ""


# Zone groups kept for old systems that duplicate the Area/City names.
_LEGACY_ZONE_PREFIXES = ("Etc/", "SystemV/", "posix/", "right/", "US/", "Canada/", "Brazil/", "Chile/", "Mexico/")


def timezone_choices(current: str) -> list[str]:
    """Every Area/City zone name, sorted, with the stored one kept even if it is a legacy name."""
    from zoneinfo import available_timezones

    names = {z for z in available_timezones() if "/" in z and not z.startswith(_LEGACY_ZONE_PREFIXES)}
    if current:
        names.add(current)
    return sorted(names)


def currency_choices(current: str) -> list[str]:
    """Lower-case codes of every currency in use that the CRM bills correctly, the stored one kept."""
    from crm.money.amounts import _legal_tender

    codes = {c.lower() for c in _legal_tender() if currency_problem(c) is None}
    if current:
        codes.add(current.lower())
    return sorted(codes)


def currency_label(code: str) -> str:
    """'usd — US Dollar'."""
    from babel.numbers import get_currency_name

    return f"{code.upper()} — {get_currency_name(code.upper(), locale='en_US')}"
