"""Settings → Go live, step by step: the checklist with each step's result and its action, and
the switch to live mode. The steps, checks and rules are crm/golive/steps.py's; this only shows them.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from crm.config import integrations as rules
from crm.config.settings import Settings
from crm.golive import steps as golive
from crm.users.auth import Session
from db.pool import connection
from ui import settings_actions as actions
from ui.plain import plain
from ui.widgets import clock, flash

ICON_GREEN, ICON_FAILED = ":green[:material/check_circle:]", ":red[:material/cancel:]"
ICON_UNCHECKED, ICON_STALE = ":gray[:material/radio_button_unchecked:]", ":orange[:material/history:]"


def _when(ts: datetime | None, current: Settings) -> str:
    return f"{ts.astimezone(clock(current).local.tzinfo):%Y-%m-%d %H:%M}" if ts else "never"


def _waiting_for_payment(current: Settings) -> bool:
    with connection() as conn:
        view = next(v for v in golive.checklist(conn, current) if v.step.key == "test_invoice")
    return bool(view.facts.get("invoice_id")) and not view.green


def render(current: Settings, session: Session) -> None:
    mode = current.stripe_mode

    # Refreshes itself every 3 s while a test invoice waits for its payment.
    @st.fragment(run_every="3s" if _waiting_for_payment(current) else None)
    def go_live() -> None:
        st.subheader("Go live, step by step")
        st.caption("Each step is checked for real (Stripe, Resend, the webhook ledger) and remembered with when it was "
                   "checked. Live mode is refused until steps 1–5 are green.")
        if _waiting_for_payment(current):
            result = golive.check_step("test_invoice", current, session.user_id)
            if result.ok:
                flash(result.detail)
                st.rerun()
        with connection() as conn:
            views = golive.checklist(conn, current)
            refusals = golive.live_refusals(conn, current)
        if st.button("Check all steps", key="golive_check_all"):
            golive.check_all(current, session.user_id)
            st.rerun()
        for view in views:
            s, icon = view.step, (ICON_GREEN if view.green else ICON_UNCHECKED if view.ok is None
                                  else ICON_STALE if view.ok else ICON_FAILED)
            with st.container(border=True):
                st.markdown(f"{icon} **{s.number}. {s.title}**" + (" · `SANDBOX`" if view.sandboxed else ""))
                (st.success if view.green else st.info if view.ok is None else st.warning)(plain(view.detail))
                checked = f"Checked {_when(view.checked_at, current)}. " if view.checked_at else ""
                st.caption(checked + ("" if view.green else s.how))
                cols = st.columns(3)
                if cols[0].button("Check", key=f"golive_check_{s.key}"):
                    golive.check_step(s.key, current, session.user_id)
                    st.rerun()
                if s.key == "resend" and cols[1].button("Set up domain in Resend", key="golive_resend_setup"):
                    outcome = golive.setup_resend_domain(current)
                    (st.success if outcome.ok else st.error)(plain(outcome.message))
                    if outcome.records:
                        st.caption("Add these DNS records at your DNS host, then press Check:")
                        st.dataframe(outcome.records, hide_index=True)
                if s.key == "test_invoice":
                    if cols[1].button("Send test invoice", key="golive_send_test_invoice"):
                        with st.spinner("Sending the test invoice through Send via Stripe…"):
                            outcome = golive.send_test_invoice(current, session.email, session.name, session.user_id,
                                                               session.email)
                        (flash if outcome.ok else st.error)(plain(outcome.message))
                        if outcome.ok:
                            st.rerun()
                    pay_url = view.facts.get("pay_url")
                    if pay_url and not view.green:
                        cols[2].link_button("Open the pay link", str(pay_url))
                        st.caption(f"Pay link: {pay_url}")
        with st.container(border=True):
            live_now = mode == "live"
            st.markdown((ICON_GREEN if live_now or not refusals else ICON_FAILED) + " **6. Switch to live**"
                        + (" · `SANDBOX`" if current.stripe_sandboxed else ""))
            if live_now:
                st.success("Stripe is in live mode." + (" SANDBOX: no live key is set, no real card is charged."
                                                        if current.stripe_sandboxed else ""))
            elif refusals:
                st.warning("Refused until steps 1–5 are green:\n\n" + "\n".join(f"- {r}" for r in refusals))
            else:
                st.success("Steps 1–5 are green: live mode may be switched on.")
            with st.form("stripe_mode"):
                st.write(f"Current mode: **{mode}**")
                new_mode = st.radio("Mode", ["test", "live"], index=0 if mode == "test" else 1, horizontal=True)
                st.caption(rules.MODE_NOTE)
                confirmed = st.checkbox("I understand what changes")
                confirm_msg = st.empty()
                switch = st.form_submit_button("Switch mode")
            if switch:
                if not confirmed:
                    confirm_msg.error("Tick the confirmation to switch modes.")
                elif new_mode != mode:
                    outcome = golive.switch_mode(new_mode, session.user_id)
                    if outcome.ok:
                        actions.forget_webhook_health()
                        flash(plain(outcome.message))
                        st.rerun(scope="app")
                    confirm_msg.error(plain(outcome.message))

    go_live()
