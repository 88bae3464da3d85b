"""Email header values are one line: CR, LF and every other line or control character in a
from, reply-to or subject is flattened to a space before a request to Resend is built.

A business name `Acme\\r\\nBcc: victim@example.com` would otherwise reach Resend's `from` with
the line break in it. The Settings fields refuse such values (crm/validation.py::header_error);
this is the same rule where the values are used, for what was stored before, or comes from
the environment. Pure.
"""

from __future__ import annotations

import re
from email.utils import formataddr, parseaddr
from typing import Any

HEADER_FIELDS = ("from", "reply_to", "subject")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def one_line(value: str) -> str:
    """Line breaks and control characters become single spaces; runs of spaces collapse."""
    return " ".join(_BREAKS.sub(" ", value).split())


def from_header(configured: str, business_name: str) -> str:
    """`Name <address>` from Settings' email.from, the business name when it names nobody."""
    name, address = parseaddr(one_line(configured))
    return formataddr((one_line(name or business_name), address))


def flattened(params: dict[str, Any]) -> dict[str, Any]:
    """The request with its header fields made one line (a `reply_to` list item by item)."""
    out = dict(params)
    for key in HEADER_FIELDS:
        value = out.get(key)
        if isinstance(value, str):
            out[key] = one_line(value)
        elif isinstance(value, list):
            out[key] = [one_line(v) if isinstance(v, str) else v for v in value]
    return out
