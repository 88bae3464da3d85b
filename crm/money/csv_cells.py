"""Cells that a spreadsheet shows as text: every CSV the CRM writes goes through `csv_text`.

OWASP's rule against CSV (formula) injection: a text cell that starts with `=`, `+`, `-`,
`@`, a tab or a carriage return is prefixed with a single quote, so Excel, LibreOffice and
Google Sheets show it instead of evaluating it (`=HYPERLINK(...)` as a customer name would
otherwise leak the sheet when the accountant opens it). A number stays a number: an int, or
a string that is a plain decimal (`-12.50`: a refund), is written as it is.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet should show it. Pure."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV with a header row, CRLF line ends, every cell made safe."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({key: safe_cell(value) for key, value in row.items()} for row in rows)
    return buf.getvalue()
