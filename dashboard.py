"""The dashboard's entry point: the login gate, then navigation by role. Nothing else."""

from __future__ import annotations

import streamlit as st

from crm.ui.session import current_session, logout

st.set_page_config(page_title="CRM", page_icon=":material/receipt_long:", layout="wide")

session = current_session()
if session is None:
    page = st.navigation([st.Page("pages/login.py", title="Log in", icon=":material/login:")])
else:
    pages = [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)]
    nav = st.navigation(pages)
    with st.sidebar:
        st.caption(f"{session.name or session.email} · {session.role}")
        if st.button("Log out"):
            logout()
            st.rerun()
    page = nav
page.run()
