"""Login form: email and password against argon2 hashes, with lockout."""

from __future__ import annotations

import streamlit as st

from crm.auth import LoginError, login
from db.pool import connection
from ui.session import start_session

st.title("Log in")
with st.form("login"):
    email = st.text_input("Email")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Log in", type="primary")
if submitted:
    try:
        with connection() as conn:
            session = login(conn, email, password)
    except LoginError as exc:
        st.error(str(exc))
    else:
        start_session(session)
        st.rerun()
