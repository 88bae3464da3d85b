"""Small helpers the pages share: the business clock, flash messages, a pager, money.

No queries of their own beyond reading settings; pages call db/* for data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from crm.money import format_cents
from crm.settings import Settings, load_settings
from db.pool import connection

LIVE_REFRESH = "3s"  # the invoice list and tiles rerun this often (payment visible within ~5 s)
PAGE_SIZE = 50


@dataclass(frozen=True)
class Clock:
    """'Now' and the business's local date: overdue and 'this month' use the local calendar."""

    now: datetime
    tz: str

    @property
    def local(self) -> datetime:
        return self.now.astimezone(ZoneInfo(self.tz))

    @property
    def today(self) -> date:
        return self.local.date()

    @property
    def day_start(self) -> datetime:
        return self.local.replace(hour=0, minute=0, second=0, microsecond=0)

    @property
    def month_start(self) -> datetime:
        return self.day_start.replace(day=1)


def settings() -> Settings:
    with connection() as conn:
        return load_settings(conn)


def clock(current: Settings | None = None) -> Clock:
    tz = str((current or settings())["business.timezone"])
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        tz = "UTC"
    return Clock(datetime.now(UTC), tz)


def money(cents: Any, currency: str = "usd") -> str:
    return "" if cents is None else format_cents(int(cents), currency)


def flash(message: str, kind: str = "success") -> None:
    """A message that survives the st.rerun() after a save."""
    st.session_state["_flash"] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop("_flash", None)
    if item:
        kind, message = item
        (st.success if kind == "success" else st.warning)(message)


def pager(key: str, total: int, page_size: int = PAGE_SIZE) -> int:
    """A page picker under a list; returns the offset of the chosen page."""
    pages = max(1, -(-total // page_size))
    if pages == 1:
        st.session_state.pop(key, None)
        st.caption(f"{total} rows")
        return 0
    if int(st.session_state.get(key, 1)) > pages:  # the filters changed and the list got shorter
        st.session_state[key] = pages
    page = st.number_input(f"Page (of {pages}, {total} rows)", min_value=1, max_value=pages, value=1, step=1,
                           key=key)
    return (int(page) - 1) * page_size


def field_errors(errors: dict[str, str | None]) -> bool:
    """Show each message; True when there were any (and so nothing may be saved)."""
    found = False
    for message in errors.values():
        if message:
            st.error(message)
            found = True
    return found
