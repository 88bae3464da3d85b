"""The dashboard as served: Streamlit's dashboard.py plus the /auth routes that set and clear
the httpOnly session cookie (ui/auth_routes.py), so a reload keeps the user logged in.

`streamlit run serve.py` finds `app` and serves both; `streamlit run dashboard.py` still works,
without sessions that survive a reload.
"""

import streamlit as st

from ui.auth_routes import routes

app = st.App("dashboard.py", routes=routes())
