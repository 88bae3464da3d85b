"""Which invoice, customer or job a page has open: from a link (`?invoice=12`) or the session.

A link's id that is not a number, or an id of a record that does not exist (deleted, from
another database, typed by hand), says "No such invoice" (customer, job) above the page's
list and is forgotten; it never stops the page with an error. The id typed in the link is
never echoed back (it is user input and st.warning renders Markdown).
"""

from __future__ import annotations

import re

import streamlit as st

_ID = re.compile(r"[0-9]{1,9}")


def parse_id(raw: str) -> int | None:
    """'12' -> 12; anything but a positive whole number of at most 9 digits -> None. Pure."""
    text = raw.strip()
    return int(text) if _ID.fullmatch(text) and int(text) > 0 else None


def no_such(kind: str, record_id: int | None = None) -> str:
    named = f" #{record_id}" if record_id is not None else ""
    return f"No such {kind}{named}. Pick one from the list."


def open_id(kind: str) -> int | None:
    """The open record's id: the link's `?<kind>=` (once, then the session's `open_<kind>`)."""
    key = f"open_{kind}"
    raw = st.query_params.get(kind)
    if raw is not None and key not in st.session_state:
        parsed = parse_id(raw)
        if parsed is None:
            st.warning(no_such(kind))
            del st.query_params[kind]
            return None
        st.session_state[key] = parsed
    value = st.session_state.get(key)
    return int(value) if isinstance(value, int) else None


def not_found(kind: str, record_id: int) -> None:
    """The open id names nothing: say so and forget it (the page's list is above)."""
    st.warning(no_such(kind, record_id))
    st.session_state.pop(f"open_{kind}", None)
    if kind in st.query_params:
        del st.query_params[kind]
