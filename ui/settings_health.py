"""Settings: webhook health (Payments shows the plain summary, Advanced the ids and event
names) and the workers' table. Every time is in the business's time zone."""

from __future__ import annotations

from typing import Any

import streamlit as st

from crm.config.settings import Settings
from ui import settings_actions as actions
from ui.plain import plain
from ui.widgets import Clock, flash, frame, table


def webhook_summary(current: Settings, now: Clock) -> None:
    """Per mode: is Stripe reaching the sidecar, in words and four numbers."""
    mode = current.stripe_mode
    for mh in actions.webhook_health(current):
        ep = mh.endpoint
        label = f"{mh.mode.title()} mode" + (" (current)" if mh.mode == mode else "") + (
            " · SANDBOX" if ep.sandboxed else "")
        with st.container(border=True):
            st.markdown(f"**{label}**")
            for warning in mh.warnings:
                (st.error if warning.startswith("EMERGENCY") else st.warning)(plain(warning))
            if mh.emergency and st.button(f"Re-enable the {mh.mode} endpoint", key=f"reenable_{mh.mode}",
                                          type="primary"):
                outcome = actions.reenable_webhook(current, mh.mode)
                if outcome.ok:
                    flash(outcome.message + " Run reconcile (Activity) to catch up on what it missed.")
                    st.rerun()
                st.error(plain(outcome.message))
            if not mh.in_use and not ep.registered:
                st.caption(f"Not set up: no {mh.mode}-mode endpoint is registered.")
                continue
            m = st.columns(4)
            m[0].metric("Endpoint", (ep.status or "none").upper() if not ep.error else "unknown")
            m[1].metric("Received (24 h)", mh.received_24h)
            m[2].metric("Missed (24 h)", mh.missed_24h)
            m[3].metric("Last received", now.show(mh.last_received)[11:] if mh.last_received else "never",
                        help=f"{now.show(mh.last_received, seconds=True)} {now.tz_label}" if mh.last_received
                        else None)
            failure = mh.last_failure
            st.caption("Last failure: " + (f"{now.show(failure['received_at'], seconds=True)} {failure['type']} "
                                           f"{failure['outcome']} ({plain(failure['detail'] or 'no detail')})"
                                           if failure else "none recorded") + f". Times in {now.tz_label}.")
    st.caption("Endpoint ids, subscribed events and missed deliveries: Advanced.")


def webhook_details(current: Settings, now: Clock) -> None:
    """The ids and event names behind the summary, for whoever debugs a delivery."""
    for mh in actions.webhook_health(current):
        ep = mh.endpoint
        if ep.registered:
            st.caption(f"{mh.mode}: {ep.endpoint_id} → {plain(ep.url)} · {len(ep.enabled_events)} enabled events"
                       + (f" · missing: {', '.join(ep.missing_types)}" if ep.missing_types else
                          " · every handled type subscribed"))
        failure = mh.last_failure
        if failure:
            st.caption(f"{mh.mode}: last failure {now.show(failure['received_at'], seconds=True)} via "
                       f"{failure['source']}. Deliveries that do not verify (400) are logged by the sidecar, "
                       "not stored.")
        if mh.missed:
            st.caption(f"{mh.mode}: missed deliveries (found by reconcile, never delivered by webhook):")
            table(frame(mh.missed, {k: k.replace("_", " ").capitalize() for k in mh.missed[0]}, now.tz))


def workers(health: dict[str, Any], now: Clock) -> None:
    if health["workers"]:
        table(frame(health["workers"], {"worker": "Worker", "last_run_at": "Last run", "last_ok_at": "Last success",
                                        "last_error": "Last error"}, now.tz), key="workers_table")
    st.caption(f"Last Resend webhook: {now.show(health['last_resend']) or 'never'}. Times in {now.tz_label}.")
