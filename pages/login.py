"""Login form: email and password against argon2 hashes, throttled per source."""

from __future__ import annotations

import streamlit as st

from crm.users.auth import LoginError, login
from db.pool import connection
from ui.session import client_source, ended_by_account_change, start_session

st.title("Log in")
if ended_by_account_change():
    st.info("You were logged out because your account changed. Log in again.")
with st.form("login"):
    email = st.text_input("Email")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Log in", type="primary")
if submitted:
    try:
        with connection() as conn:
            session = login(conn, email, password, source=client_source())
    except LoginError as exc:
        st.error(str(exc))
    else:
        start_session(session)
        st.rerun()
