"""Pure checks on what people type into the dashboard: emails, names, free text.

Each check returns a message for the field (None when the value is fine), so a page can
show it right under the input and save nothing. The email pattern matches the CHECK on
crm.customers / crm.app_users, plus the common mistakes that CHECK lets through.
"""

from __future__ import annotations

import re

# As strict as Stripe, which answers email_invalid to `x@.maie.com`: a dot-atom local part
# (no leading, trailing or double dot, at most 64 characters) and a domain of at least two
# labels (letters, digits, inner hyphens; at most 63 each) ending in a letters-only label.
_EMAIL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})")
_MARKUP = re.compile(r"[<>]")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")  # CR, LF and the other control characters
MAX_NAME = 200
MAX_TEXT = 2000


def email_error(value: str, required: bool = True) -> str | None:
    text = value.strip()
    if not text:
        return "Enter an email address." if required else None
    if len(text) > 254 or len(text.rsplit("@", 1)[0]) > 64 or not _EMAIL.fullmatch(text):
        tld = text.rsplit(".", 1)[-1]
        if "@" in text and "." in text.rsplit("@", 1)[-1] and (len(tld) < 2 or not tld.isalpha()):
            return f"'{text}' is not a valid email address (the domain has no real ending)."
        return f"'{text}' is not a valid email address (expected name@example.com)."
    return None


def name_error(value: str, what: str = "Name") -> str | None:
    """Required, short, and without markup: names end up in emails and on Stripe."""
    text = value.strip()
    if not text:
        return f"{what} is required."
    if len(text) > MAX_NAME:
        return f"{what} is too long (at most {MAX_NAME} characters)."
    if _MARKUP.search(text):
        return f"{what} cannot contain < or > (no HTML)."
    return header_error(text, what)


def header_error(value: str, what: str) -> str | None:
    """A value that ends up in an email header (from, reply-to, subject) is one line."""
    if _LINE_BREAKS.search(value.strip()):
        return f"{what} must be one line (no line breaks or control characters)."
    return None


def text_error(value: str, what: str, max_len: int = MAX_TEXT) -> str | None:
    """Optional free text (addresses, notes): a length limit and no markup."""
    if len(value) > max_len:
        return f"{what} is too long (at most {max_len} characters)."
    if _MARKUP.search(value):
        return f"{what} cannot contain < or > (no HTML)."
    return None
