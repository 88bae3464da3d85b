"""Users (owner): add people, disable them, reset passwords. The last active owner
cannot be disabled, so nobody is locked out of the owner pages."""

from __future__ import annotations

import streamlit as st

from crm.users.admin import UserAdminError, add_user, reset_password, set_user_active
from crm.users.passwords import WeakPasswordError
from crm.validation import email_error, text_error
from db import users
from db.pool import connection
from ui.plain import plain
from ui.session import require_owner
from ui.widgets import clock, frame, settings, show_flash, table

session = require_owner()
st.title("Users")
show_flash()
with connection() as conn:
    people = users.list_users(conn)
now = clock(settings())
table(frame(people, {"email": "Email", "name": "Name", "role": "Role", "active": "Active",
                     "failed_logins": "Failed logins since last login", "last_login_at": "Last login",
                     "id": "ID"}, now.tz), key="users_table")
st.caption(f"Times in {now.tz_label}.")

with st.expander("Add a user", icon=":material/person_add:"):
    with st.form("add_user"):
        email = st.text_input("Email", key="new_user_email")
        email_msg = st.empty()
        name = st.text_input("Name", key="new_user_name")
        name_msg = st.empty()
        role = st.selectbox("Role", ["staff", "owner"], key="new_user_role")
        password = st.text_input("Initial password (at least 10 characters)", type="password", key="new_user_pw")
        pw_msg = st.empty()
        add = st.form_submit_button("Add user", type="primary")
    if add:
        errors = {email_msg: email_error(email), name_msg: text_error(name, "Name", 200),
                  pw_msg: None if len(password) >= 10 else "Passwords need at least 10 characters."}
        if not errors[email_msg] and any(p["email"].lower() == email.strip().lower() for p in people):
            errors[email_msg] = "There is already a user with that email."
        for slot, message in errors.items():
            if message:
                slot.error(plain(message))  # may quote what was typed
        if not any(errors.values()):
            with connection() as conn:
                add_user(conn, session.email, email, name, role, password)
            st.session_state["_flash"] = ("success", f"Added {plain(email.strip().lower())} as {role}.")
            st.rerun()

by_id = {int(p["id"]): p for p in people}
chosen = st.selectbox("Manage user", list(by_id), format_func=lambda i: f"{by_id[i]['email']} ({by_id[i]['role']})",
                      key="manage_user")
if chosen is not None:
    person = by_id[chosen]
    active_owners = sum(1 for p in people if p["role"] == "owner" and p["active"])
    left, right = st.columns(2)
    with left:
        if person["active"]:
            last_owner = person["role"] == "owner" and active_owners <= 1
            if st.button("Disable", disabled=last_owner, key="disable_user",
                         help="The last active owner cannot be disabled." if last_owner else None):
                try:
                    with connection() as conn:
                        set_user_active(conn, session.email, chosen, False)
                except UserAdminError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["_flash"] = ("success", f"{plain(person['email'])} disabled.")
                    st.rerun()
        elif st.button("Enable", key="enable_user"):
            with connection() as conn:
                set_user_active(conn, session.email, chosen, True)
            st.session_state["_flash"] = ("success", f"{plain(person['email'])} enabled.")
            st.rerun()
    with right.form("reset_password"):
        new_pw = st.text_input("New password", type="password", key="reset_pw")
        reset_msg = st.empty()
        reset = st.form_submit_button("Reset password")
    if reset:
        try:
            with connection() as conn:
                reset_password(conn, session.email, chosen, new_pw)
        except WeakPasswordError as exc:
            reset_msg.error(str(exc).capitalize() + ".")
        else:
            st.session_state["_flash"] = ("success", f"Password of {plain(person['email'])} reset; lockout cleared.")
            st.rerun()
