"""Small scripts run in the browser where Streamlit has no setting: bring a newly opened item
into view, and close the sidebar after a navigation on a phone.

Each runs once per event (kept in session_state), never on every rerun, so a live fragment
refreshing or a save does not pull the page away from where the user is working.
"""

from __future__ import annotations

import json

import streamlit as st

PHONE_MAX_PX = 640  # Streamlit's own breakpoint: below it the sidebar overlays the page


def _run(script: str, nonce: str) -> None:
    # The nonce makes each event a new element, so the browser runs its script again.
    st.html(f'<span data-crm-script="{nonce}" hidden></span><script>{script}</script>',
            unsafe_allow_javascript=True)


def into_view_once(kind: str, item: int) -> None:
    """Scroll the page to this spot the first time `item` is shown (a row clicked far above)."""
    anchor = f"crm-open-{kind}-{item}"
    st.html(f'<div id="{anchor}"></div>')
    seen = f"_scrolled_{kind}"
    if st.session_state.get(seen) == item:
        return
    st.session_state[seen] = item
    _run("setTimeout(() => { const el = document.getElementById(" + json.dumps(anchor) + ");"
         " if (el) el.scrollIntoView({behavior: 'instant', block: 'start'}); }, 300);", anchor)


def forget(kind: str) -> None:
    """The item was closed: opening it again scrolls to it again."""
    st.session_state.pop(f"_scrolled_{kind}", None)


def close_sidebar_on_phone(page_key: str) -> None:
    """After moving to another page, fold the sidebar away on a narrow screen (on a wide one it
    sits beside the page and stays)."""
    last = st.session_state.get("_last_page")
    st.session_state["_last_page"] = page_key
    if last is None or last == page_key:
        return
    _run("setTimeout(() => { if (window.innerWidth >= " + str(PHONE_MAX_PX) + ") return;"
         " const bar = document.querySelector('[data-testid=\"stSidebar\"]');"
         " const b = document.querySelector('[data-testid=\"stSidebarCollapseButton\"] button')"
         " || document.querySelector('[data-testid=\"stSidebarCollapseButton\"]');"
         " if (bar && b && bar.getBoundingClientRect().right > 0) b.click(); }, 200);", f"nav-{page_key}")
