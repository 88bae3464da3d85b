"""The logged-in session in Streamlit's session_state, with expiry and role checks."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from crm.auth import Session

_KEY = "crm_session"


def current_session() -> Session | None:
    session = st.session_state.get(_KEY)
    if not isinstance(session, Session):
        return None
    if session.expired(datetime.now(UTC)):
        del st.session_state[_KEY]
        return None
    return session


def start_session(session: Session) -> None:
    st.session_state[_KEY] = session


def logout() -> None:
    st.session_state.pop(_KEY, None)


def require_login() -> Session:
    """Every page calls this first; a page reached without a session stops here."""
    session = current_session()
    if session is None:
        st.error("Please log in.")
        st.stop()
    assert session is not None
    return session


def require_owner() -> Session:
    """Owner-only pages: a staff session reaching one by URL is refused here."""
    session = require_login()
    if not session.is_owner:
        st.error("This page is for the owner only.")
        st.stop()
    return session
