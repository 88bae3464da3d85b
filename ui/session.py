"""The logged-in session in Streamlit's session_state, with expiry and role checks.

Every page calls require_login (or require_owner) first, so it is also where every page gets
the banner about stored secrets that CRM_SECRET_KEY cannot decrypt.

Every rerun re-checks the session against the user row (crm.auth.session_still_valid): a
user disabled, or whose password or role changed, is logged out at the next click.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from crm.users.auth import Session, session_still_valid
from crm.users.client_address import client_address, configured_proxies, server_trusted_hosts
from db.pool import connection
from ui.secret_key_banner import warn_if_undecryptable

_KEY = "crm_session"
_ENDED_KEY = "crm_session_ended"


def current_session() -> Session | None:
    session = st.session_state.get(_KEY)
    if not isinstance(session, Session):
        return None
    if session.expired(datetime.now(UTC)):
        del st.session_state[_KEY]
        return None
    with connection() as conn:
        still = session_still_valid(conn, session)
    if not still:
        del st.session_state[_KEY]
        st.session_state[_ENDED_KEY] = True
        return None
    return session


def ended_by_account_change() -> bool:
    """True once after a session was ended because its account changed (the login page says so)."""
    return bool(st.session_state.pop(_ENDED_KEY, False))


def client_source() -> str:
    """Where this browser connects from, for login throttling ('unknown' when Streamlit cannot
    tell). Forwarded headers count only from CRM_TRUSTED_PROXIES (crm/users/client_address.py)."""
    try:
        address = st.context.ip_address
        forwarded = st.context.headers.get_all("X-Forwarded-For")
    except Exception:  # noqa: BLE001 - no request context
        return "unknown"
    # AppTest's mocked client hands back mocks here, not an address and headers.
    if not (address is None or isinstance(address, str)) or not isinstance(forwarded, list):
        return "unknown"
    return client_address(address or None, [f for f in forwarded if isinstance(f, str)],
                          configured_proxies(), server_trusted_hosts())


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
    warn_if_undecryptable()  # every page says what to do about a wrong CRM_SECRET_KEY
    return session


def require_owner() -> Session:
    """Owner-only pages: a staff session reaching one by URL is refused here."""
    session = require_login()
    if not session.is_owner:
        st.error("This page is for the owner only.")
        st.stop()
    return session
