"""Pure decisions behind the Collections page and the invoice list: days overdue, DSO,
aging bucket names, and durations people can read. The status an invoice shows is
crm.invoice_display_status (55_bank_disputes.sql), read through db/queries_invoices.py.

The sums themselves are computed in SQL (db/queries_collections.py); these functions
only turn those small results into what the page says.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
DSO_WINDOW_DAYS = 90
DSO_FORMULA = "DSO = outstanding receivables ÷ amount invoiced in the last 90 days × 90"


def days_overdue(status: str, due_date: date | None, today: date) -> int | None:
    if status != "open" or due_date is None or due_date >= today:
        return None
    return (today - due_date).days


def aging_bucket(due_date: date | None, today: date) -> str:
    """The AR aging bucket of an open invoice; same rule as the SQL CASE."""
    if due_date is None or due_date >= today:
        return "current"
    late = (today - due_date).days
    if late <= 30:
        return "1-30"
    if late <= 60:
        return "31-60"
    if late <= 90:
        return "61-90"
    return "90+"


def dso_days(outstanding_cents: int, invoiced_cents: int, window_days: int = DSO_WINDOW_DAYS) -> Decimal | None:
    """Days sales outstanding, one decimal; None when nothing was invoiced in the window."""
    if invoiced_cents <= 0:
        return None
    days = Decimal(outstanding_cents) / Decimal(invoiced_cents) * window_days
    return days.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def human_duration(seconds: float | None) -> str:
    """3600 -> '1.0 h': minutes to months in one short unit."""
    if seconds is None:
        return "—"
    minutes = seconds / 60
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.1f} h"
    days = hours / 24
    if days < 60:
        return f"{days:.1f} days"
    return f"{days / 30:.1f} months"


def change_label(current: float | None, previous: float | None) -> str | None:
    """'-42%' for a median that fell by 42% (faster payment); None without a basis."""
    if current is None or previous is None or previous <= 0:
        return None
    change = (current - previous) / previous * 100
    return f"{change:+.0f}%"


def month_start(today: date) -> date:
    return today.replace(day=1)


def window(today: date, days: int) -> tuple[date, date]:
    """[start, end) of the last `days` days, ending tomorrow so today counts."""
    end = today + timedelta(days=1)
    return end - timedelta(days=days), end


def share_percent(part: int, whole: int) -> int | None:
    """Whole percent of `whole`, rounded half up; None when there is nothing to divide."""
    if whole <= 0:
        return None
    return int((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def share_label(percent: int | None) -> str:
    return "—" if percent is None else f"{percent}%"


def points_change(current: int | None, previous: int | None) -> str | None:
    """'+6 pts' from 66% to 72%; None without both."""
    if current is None or previous is None:
        return None
    return f"{current - previous:+d} pts"
