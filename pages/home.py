"""Home: a placeholder until the dashboard's pages land."""

from __future__ import annotations

import streamlit as st

from crm.ui.session import require_login

session = require_login()
st.title("Home")
st.write(f"Welcome, {session.name or session.email}.")
