"""Settings → Texts (Twilio): Account SID, auth token (encrypted, shown masked), Messaging
Service SID and the public status-callback URL; Send test text; the go-live check; the US
A2P 10DLC note. Pages call `render` once."""

from __future__ import annotations

import streamlit as st

from crm.config.secrets_store import mask
from crm.config.settings import SPECS, Settings, save_setting, secret_hints
from crm.texts.setup import A2P_NOTE, check_twilio, sid_error, token_error
from crm.users.auth import Session
from db.pool import connection
from ui.plain import plain


def _token_shown(current: Settings) -> str:
    key = "twilio.auth_token"
    if current.sources[key] == "env":
        return f"{mask(str(current[key]))} (from ${SPECS[key].env}, which wins)"
    with connection() as conn:
        return secret_hints(conn).get(key) or "not set (the sandbox's Twilio is used)"


def render(current: Settings, session: Session) -> None:
    st.subheader("Text messages (Twilio)")
    if current.twilio_sandboxed:
        st.caption("SANDBOX: no Twilio auth token, so texts go to the sandbox's phone page (/phone), not to phones.")
    with st.form("twilio"):
        sid = st.text_input("Account SID (AC…)", value=str(current["twilio.account_sid"]), key="twilio_sid")
        sid_msg = st.empty()
        st.write(f"Auth token: **{_token_shown(current)}**")
        token = st.text_input("New auth token (leave empty to keep)", type="password", key="twilio_token_input")
        token_msg = st.empty()
        service = st.text_input("Messaging Service SID (MG…)", value=str(current["twilio.messaging_service_sid"]),
                                key="twilio_service")
        service_msg = st.empty()
        callback = st.text_input("Status callback URL (the sidecar's public …/webhooks/twilio)",
                                 value=str(current["twilio.status_callback_url"]), key="twilio_callback")
        saved = st.form_submit_button("Save text settings")
    if saved:
        errors = {sid_msg: sid_error(sid, "AC", "Twilio Account SID"), token_msg: token_error(token),
                  service_msg: sid_error(service, "MG", "Messaging Service SID")}
        for slot, message in errors.items():
            if message:
                slot.error(plain(message))  # may quote what was typed
        if not any(errors.values()):
            with connection() as conn:
                for key, value in (("twilio.account_sid", sid.strip()), ("twilio.messaging_service_sid",
                                                                          service.strip()),
                                   ("twilio.status_callback_url", callback.strip())):
                    save_setting(conn, key, value, session.user_id)
                if token.strip():
                    save_setting(conn, "twilio.auth_token", token.strip(), session.user_id)
            st.session_state.pop("twilio_token_input", None)
            st.session_state["_flash"] = ("success", "Text settings saved.")
            st.rerun()
    left, right = st.columns(2)
    if left.button("Check Twilio", key="twilio_check", help="Go live: the account is active and the Messaging "
                                                              "Service exists."):
        for check in check_twilio(current):
            (st.success if check.ok else st.error)(plain(check.message))
    with right.form("test_text"):
        to = st.text_input("Send a test text to", key="test_text_to")
        to_msg = st.empty()
        send = st.form_submit_button("Send test text")
    if send:
        from crm.texts.send import TextRefused, send_test_text

        try:
            result = send_test_text(to, session.email)
        except TextRefused as exc:
            to_msg.error(plain(exc))
        else:
            (st.success if result.ok else st.error)(plain(result.message))
    st.info(A2P_NOTE, icon=":material/info:")
