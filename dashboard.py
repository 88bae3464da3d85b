"""The dashboard's entry point: the login gate, then navigation by role. Nothing else.

Owner-only pages are not in a staff session's navigation, and each of them also calls
require_owner(), so reaching one by URL is refused as well. A page that cannot get a
database connection within DB_POOL_TIMEOUT_S says so instead of hanging or showing a trace.
"""

from __future__ import annotations

from typing import NoReturn

import psycopg
import streamlit as st
from psycopg_pool import PoolTimeout

from ui.plain import plain
from ui.scroll import close_sidebar_on_phone
from ui.session import current_session, logout

st.set_page_config(page_title="CRM", page_icon=":material/receipt_long:", layout="wide")


def database_trouble(exc: Exception) -> NoReturn:
    if isinstance(exc, PoolTimeout):
        st.error("The database is busy: no connection came free in time (every one of this dashboard's "
                 "connections is in use). Try again in a moment.")
    else:
        st.error(f"The database cannot be reached right now ({type(exc).__name__}). Try again in a moment.")
    st.stop()


try:
    session = current_session()  # re-checks the user row, so it needs the database too
except (PoolTimeout, psycopg.OperationalError) as exc:
    database_trouble(exc)
if session is None:
    page = st.navigation([st.Page("pages/login.py", title="Log in", icon=":material/login:")])
else:
    work = [
        st.Page("pages/invoices.py", title="Invoices", icon=":material/receipt_long:", default=True),
        st.Page("pages/collect.py", title="Collect", icon=":material/qr_code_2:", url_path="collect"),
        st.Page("pages/jobs.py", title="Jobs", icon=":material/construction:"),
        st.Page("pages/customers.py", title="Customers", icon=":material/group:"),
        st.Page("pages/activity.py", title="Activity", icon=":material/timeline:"),
    ]
    owner = [
        st.Page("pages/collections_page.py", title="Collections", icon=":material/monitoring:",
                url_path="collections"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
        st.Page("pages/users.py", title="Users", icon=":material/manage_accounts:"),
    ]
    page = st.navigation({"Work": work, "Owner": owner} if session.is_owner else {"Work": work})
    with st.sidebar:
        st.caption(f"{plain(session.name or session.email)} · {session.role}")
        if st.button("Log out"):
            logout()
            st.rerun()
if session is not None:
    close_sidebar_on_phone(page.url_path or "home")
try:
    page.run()
except (PoolTimeout, psycopg.OperationalError) as exc:
    database_trouble(exc)
