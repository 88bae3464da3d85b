"""Small helpers the pages share: the business clock, flash messages, a pager, money, and
tables (human column labels, times in the business's time zone, blanks for missing values,
a row click that opens the row).

No queries of their own beyond reading settings; pages call db/* for data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st

from crm.config.settings import Settings, load_settings
from crm.money.amounts import format_cents
from db.pool import connection

LIVE_REFRESH = "3s"  # the invoice list and tiles rerun this often (payment visible within ~5 s)
PAGE_SIZE = 50
TIME_COLUMN_PX = 135  # a whole 'YYYY-MM-DD HH:MM', never cut


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

    @property
    def tz_label(self) -> str:
        """The zone named, with its current abbreviation: 'America/Chicago (CST)'."""
        short = f"{self.local:%Z}"
        return self.tz if not short or short == self.tz else f"{self.tz} ({short})"

    def show(self, value: datetime | None, seconds: bool = False) -> str:
        """A moment as the business reads it: local time, no offset; '' for none."""
        if value is None:
            return ""
        return f"{value.astimezone(ZoneInfo(self.tz)):%Y-%m-%d %H:%M{':%S' if seconds else ''}}"


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


def cell(value: Any, tz: str) -> Any:
    """One table cell: times in the business's zone, blanks for missing values, no raw objects."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str) if value else ""
    return value


def frame(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str], tz: str) -> pd.DataFrame:
    """rows -> a DataFrame of just `columns` (key -> human label), in that order.

    A column that has any blank becomes text, so a missing number shows as an empty cell
    rather than 'None'."""
    data: dict[str, list[Any]] = {}
    times: list[str] = []
    for key, label in columns.items():
        raw = [r.get(key) for r in rows]
        if any(isinstance(v, datetime) for v in raw):
            times.append(label)
        values = [cell(v, tz) for v in raw]
        if any(v == "" for v in values) and not all(isinstance(v, str) for v in values):
            values = [str(v) for v in values]
        data[label] = values
    df = pd.DataFrame(data, columns=list(columns.values()))
    df.attrs["time_columns"] = times  # so `table` gives them room for the whole 'YYYY-MM-DD HH:MM'
    return df


def table(df: pd.DataFrame, key: str | None = None, select: bool = False, height: int | None = None,
          column_config: Mapping[str, Any] | None = None) -> int | None:
    """Show a table; with `select` (and a key), a click on a row returns that row's position,
    once: a selection that merely persists across reruns (a live list refreshing, a return to
    the page) returns None, so a row never opens by itself."""
    kwargs: dict[str, Any] = {"hide_index": True, "width": "stretch"}
    if height is not None:
        kwargs["height"] = height
    config: dict[str, Any] = {label: st.column_config.TextColumn(label, width=TIME_COLUMN_PX)
                              for label in df.attrs.get("time_columns", [])}
    config.update(column_config or {})
    if config:
        kwargs["column_config"] = config
    if not select:
        st.dataframe(df, key=key, **kwargs)
        return None
    assert key, "a selectable table needs a key"
    event = st.dataframe(df, key=key, on_select="rerun", selection_mode="single-row", **kwargs)
    rows = list(getattr(getattr(event, "selection", None), "rows", None) or [])
    picked = int(rows[0]) if rows and int(rows[0]) < len(df) else None
    last = f"_{key}_clicked"
    if picked == st.session_state.get(last):
        return None
    st.session_state[last] = picked
    return picked


def plural(count: Any, word: str) -> str:
    """'1 invoice', '3 invoices'."""
    return f"{count} {word}{'' if int(count) == 1 else 's'}"


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
