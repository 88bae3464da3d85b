"""The logged-in session in Streamlit's session_state, with expiry and role checks.

Every page calls require_login (or require_owner) first, so it is also where every page gets
the banner about stored secrets that CRM_SECRET_KEY cannot decrypt.

Every rerun re-checks the session against the user row (crm.auth.session_still_valid): a
user disabled, or whose password or role changed, is logged out at the next click. A reloaded
page (a new Streamlit session) resumes from the httpOnly cookie (crm.web_sessions) while its
stored session is open; logging out ends that stored session, in every tab, at once.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import streamlit as st

from crm import web_sessions
from crm.users.auth import Session, session_still_valid
from crm.users.client_address import client_address, configured_proxies, server_trusted_hosts
from db.pool import connection
from ui import auth_routes
from ui.secret_key_banner import warn_if_undecryptable

_KEY = "crm_session"
_ENDED_KEY = "crm_session_ended"


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(web_sessions.COOKIE)
    except Exception:  # noqa: BLE001 - no request context (AppTest)
        return None
    return value if isinstance(value, str) else None


def current_session() -> Session | None:
    session = st.session_state.get(_KEY)
    now = datetime.now(UTC)
    if not isinstance(session, Session):
        token = _cookie()
        if not token:
            return None
        with connection() as conn:
            session = web_sessions.resume(conn, token, now)
        if session is None:
            return None
        st.session_state[_KEY] = session
    if session.expired(now):
        end_session()
        return None
    with connection() as conn:
        still = session_still_valid(conn, session) and (
            session.server_id is None or web_sessions.still_live(conn, session.server_id, now))
    if not still:
        end_session()
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


def start_session(session: Session) -> bool:
    """Keep the session for this tab; where serve.py's /auth routes are mounted, also send the
    browser to trade a one-time code for its cookie, so a reload keeps it. True when the
    browser is on its way there (the page should stop and let it go)."""
    if not auth_routes.MOUNTED:
        st.session_state[_KEY] = session
        return False
    with connection() as conn:
        session_id, code = web_sessions.open_code(conn, session, datetime.now(UTC))
    st.session_state[_KEY] = replace(session, server_id=session_id)
    _go(f"/auth/start?code={code}")
    return True


def _go(url: str) -> None:
    st.html(f"<script>window.location.replace({json.dumps(url)});</script>", unsafe_allow_javascript=True)


def end_session() -> None:
    """Forget the session here and end its stored copy, so its cookie opens nothing anywhere."""
    session = st.session_state.pop(_KEY, None)
    if isinstance(session, Session) and session.server_id is not None:
        with connection() as conn:
            web_sessions.end(conn, session.server_id)
        st.session_state["_clear_cookie"] = True


def logout() -> None:
    end_session()


def clear_cookie_if_ended() -> None:
    """On the login page after a logout: drop the dead cookie from the browser too."""
    if st.session_state.pop("_clear_cookie", False) and auth_routes.MOUNTED:
        _go("/auth/end")


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
