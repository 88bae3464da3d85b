"""Settings → Integrations (owner): go live step by step, webhook health, Stripe keys and
webhook registration, Resend, reminders and business settings. Secrets are stored encrypted
and shown masked; a value set by an environment variable wins and is shown as such. The rules
(what each go-live step needs, when live mode may be switched on) are in crm/golive/steps.py."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from crm.config import integrations as rules
from crm.config.secrets_store import mask
from crm.config.settings import SPECS, UNDECRYPTABLE_HINT, remove_webhook_secret, save_setting, secret_hints
from crm.reminders.emails import parse_tones, tone_error
from crm.reminders.queue_job import problem as queue_job_problem
from crm.stripe import webhook_secrets
from crm.stripe.event_types import HANDLED_EVENT_TYPES
from crm.validation import email_error, header_error, name_error
from db import queries_activity
from db.pool import connection
from ui import golive_panel
from ui import settings_actions as actions
from ui.session import require_owner
from ui.widgets import clock, flash, frame, settings, show_flash, table

session = require_owner()
st.title("Settings → Integrations")
show_flash()
current = settings()
with connection() as conn:
    hints = secret_hints(conn)
    health = queries_activity.health(conn)
mode = current.stripe_mode


def shown_secret(key: str) -> str:
    """The masked form only: env values are masked here, stored ones by their saved hint."""
    if current.sources[key] == "env":
        return f"{mask(str(current[key]))} (from ${SPECS[key].env}, which wins)"
    if key in current.undecryptable:
        return f"{hints.get(key) or 'stored'}: {UNDECRYPTABLE_HINT}"
    return hints.get(key) or "not set"


def save(values: dict[str, object], message: str, clear: tuple[str, ...] = ()) -> None:
    """Save, then forget the typed secrets so the browser is never sent them back."""
    with connection() as conn:
        for key, value in values.items():
            save_setting(conn, key, value, session.user_id)
    for widget in clear:
        st.session_state.pop(widget, None)
    st.session_state["_flash"] = ("success", message)
    st.rerun()


# --- Go live, step by step ------------------------------------------------------------------
golive_panel.render(current, session)


# --- Webhook health -------------------------------------------------------------------------
st.subheader("Webhook health")
st.caption("Is Stripe reaching the sidecar? Per mode: the endpoint at Stripe, deliveries in the last 24 h, "
           "the last event not applied, and missed deliveries (events reconcile found that never arrived by webhook).")
for mh in actions.webhook_health(current):
    ep = mh.endpoint
    label = f"{mh.mode.title()} mode" + (" (current)" if mh.mode == mode else "") + (" · SANDBOX" if ep.sandboxed
                                                                                   else "")
    with st.container(border=True):
        st.markdown(f"**{label}**")
        for warning in mh.warnings:
            (st.error if warning.startswith("EMERGENCY") else st.warning)(warning)
        if mh.emergency and st.button(f"Re-enable the {mh.mode} endpoint", key=f"reenable_{mh.mode}",
                                      type="primary"):
            outcome = actions.reenable_webhook(current, mh.mode)
            if outcome.ok:
                flash(outcome.message + " Run reconcile (Activity) to catch up on what it missed.")
                st.rerun()
            st.error(outcome.message)
        if not mh.in_use and not ep.registered:
            st.caption(f"Not set up: no {mh.mode}-mode endpoint is registered.")
            continue
        m = st.columns(4)
        m[0].metric("Endpoint", (ep.status or "none").upper() if not ep.error else "unknown")
        m[1].metric("Received (24 h)", mh.received_24h)
        m[2].metric("Missed (24 h)", mh.missed_24h)
        m[3].metric("Last received", f"{mh.last_received:%H:%M:%S}" if mh.last_received else "never")
        if ep.registered:
            st.caption(f"{ep.endpoint_id} → {ep.url} · {len(ep.enabled_events)} enabled events"
                       + (f" · missing: {', '.join(ep.missing_types)}" if ep.missing_types else
                          " · every handled type subscribed"))
        failure = mh.last_failure
        st.caption("Last failure: " + (f"{failure['received_at']:%Y-%m-%d %H:%M:%S} {failure['type']} "
                                       f"{failure['outcome']} ({failure['detail'] or 'no detail'}), via "
                                       f"{failure['source']}" if failure else "none recorded")
                   + ". Deliveries that do not verify (400) are logged by the sidecar, not stored.")
        if mh.missed:
            st.caption("Missed deliveries (found by reconcile, never delivered by webhook):")
            st.dataframe(mh.missed, hide_index=True)


# --- Health -------------------------------------------------------------------------------
st.subheader("Health")
now = clock(current)
h = st.columns(4)
h[0].metric(f"Stripe ({mode} mode)", "SANDBOX" if current.stripe_sandboxed else "configured")
h[1].metric("Resend", "SANDBOX" if current.resend_sandboxed else "configured")
h[2].metric("Webhook secret", "cannot be decrypted" if f"stripe.{mode}.webhook_secrets" in current.undecryptable
            else "set" if current.stripe_webhook_secrets(mode) else "missing")
last = health[f"last_stripe_{mode}"]
h[3].metric("Last Stripe webhook", f"{now.show(last)[5:]}" if last else "never",
            help=f"{now.show(last, seconds=True)} {now.tz_label}" if last else None)
if current.stripe_sandboxed or current.resend_sandboxed:
    st.info("SANDBOX: no key is configured for " + " and ".join(
        n for n, s in (("Stripe", current.stripe_sandboxed), ("Resend", current.resend_sandboxed)) if s)
        + ", so the local emulators stand in. No real money moves and no real email is sent.")
if current.undecryptable:
    st.error(f"{len(current.undecryptable)} stored secret(s) cannot be decrypted with CRM_SECRET_KEY (it changed or "
             "was lost): webhooks are refused until they are re-entered below, or until CRM_SECRET_KEY is set back "
             "(see `python -m crm rotate-secret-key`).")
if queue_job_problem(health["queue_job"]):
    st.warning(queue_job_problem(health["queue_job"]))
if health["workers"]:
    table(frame(health["workers"], {"worker": "Worker", "last_run_at": "Last run", "last_ok_at": "Last success",
                                    "last_error": "Last error"}, now.tz), key="workers_table")
st.caption(f"Last Resend webhook: {now.show(health['last_resend']) or 'never'}. Times in {now.tz_label}.")

# --- Stripe ---------------------------------------------------------------------------------
st.subheader("Stripe")
for key_mode in ("test", "live"):
    key = f"stripe.{key_mode}.secret_key"
    with st.form(f"stripe_{key_mode}_key"):
        st.write(f"{key_mode.title()} secret key: **{shown_secret(key)}**")
        value = st.text_input(f"New {key_mode} secret key", type="password", key=f"stripe_{key_mode}_key_input")
        msg = st.empty()
        submitted = st.form_submit_button(f"Save {key_mode} key")
    if submitted:
        error = rules.stripe_key_error(key_mode, value)
        if error:
            msg.error(error)
        else:
            save({key: value.strip()}, f"Stripe {key_mode} key saved (shown masked).",
                 clear=(f"stripe_{key_mode}_key_input",))

with st.form("webhook"):
    st.write("Webhook endpoint. Signing secrets: " + "; ".join(
        f"{m} **{shown_secret(f'stripe.{m}.webhook_secrets')}**" for m in ("test", "live")))
    hook_mode = st.radio("Endpoint for", ["test", "live"], index=0 if mode == "test" else 1, horizontal=True,
                         key="webhook_mode")
    url = st.text_input("Sidecar URL", placeholder="https://crm.example.com/webhooks/stripe")
    url_msg = st.empty()
    st.caption("Enabled events: " + ", ".join(HANDLED_EVENT_TYPES) + ". Registering again updates the endpoint "
               "in place (same signing secret).")
    register = st.form_submit_button("Register webhook endpoint")
if register:
    error = rules.webhook_url_error(url)
    if error:
        url_msg.error(error)
    else:
        outcome = actions.register_webhook(current, url.strip(), session.user_id, hook_mode)
        (st.success if outcome.ok else st.error)(outcome.message)

# Undecryptable: nothing to list; the form above says so and takes a new one.
stored_secrets = ([] if f"stripe.{mode}.webhook_secrets" in current.undecryptable
                  else current.stripe_webhook_secret_entries(mode))
if stored_secrets and current.sources[f"stripe.{mode}.webhook_secrets"] != "env":
    st.write(f"Signing secrets stored for {mode} mode")
    origin = "sandbox" if current.stripe_sandboxed else "stripe"
    now = datetime.now(UTC)
    for i, entry in enumerate(stored_secrets):
        cols = st.columns([3, 4, 1])
        cols[0].write(f"`{mask(entry.secret)}` · {entry.endpoint_id or 'endpoint unknown'}")
        cols[1].caption(f"{webhook_secrets.status(entry, origin, now)} · {webhook_secrets.describe_age(entry, now)}")
        if cols[2].button("Remove", key=f"remove_secret_{mode}_{i}"):
            with connection() as conn:
                remove_webhook_secret(conn, current, mode, i, session.user_id)
            st.session_state["_flash"] = ("success", f"Removed signing secret {mask(entry.secret)}.")
            st.rerun()

# --- Resend ---------------------------------------------------------------------------------
st.subheader("Email (Resend)")
with st.form("resend"):
    st.write(f"API key: **{shown_secret('resend.api_key')}**")
    api_key = st.text_input("New Resend API key (leave empty to keep)", type="password", key="resend_key_input")
    key_msg = st.empty()
    from_address = st.text_input("From address", value=str(current["email.from"]), key="email_from")
    from_msg = st.empty()
    reply_to = st.text_input("Reply-to", value=str(current["email.reply_to"]), key="email_reply_to")
    reply_msg = st.empty()
    st.write(f"Resend webhook signing secret: **{shown_secret('resend.webhook_secret')}**")
    resend_hook = st.text_input("New Resend webhook signing secret (whsec_…, leave empty to keep)", type="password",
                                key="resend_webhook_input")
    hook_msg = st.empty()
    save_email = st.form_submit_button("Save email settings")
if save_email:
    errors = {key_msg: rules.resend_key_error(api_key) if api_key.strip() else None,
              from_msg: header_error(from_address, "From address") or email_error(actions.bare_address(from_address)),
              reply_msg: header_error(reply_to, "Reply-to") or email_error(reply_to, required=False),
              hook_msg: None if not resend_hook.strip() or resend_hook.strip().startswith("whsec_")
              else "A Resend (Svix) webhook secret starts with whsec_."}
    for slot, message in errors.items():
        if message:
            slot.error(message)
    if not any(errors.values()):
        values: dict[str, object] = {"email.from": from_address.strip(), "email.reply_to": reply_to.strip()}
        if api_key.strip():
            values["resend.api_key"] = api_key.strip()
        if resend_hook.strip():
            values["resend.webhook_secret"] = resend_hook.strip()
        save(values, "Email settings saved.", clear=("resend_key_input", "resend_webhook_input"))
left, right = st.columns(2)
if left.button("Check sending domain"):
    outcome = actions.check_domain(current)
    (st.success if outcome.ok else st.warning)(outcome.message)
with right.form("test_email"):
    to = st.text_input("Send a test email to", key="test_email_to")
    to_msg = st.empty()
    send_test = st.form_submit_button("Send test email")
if send_test:
    error = email_error(to)
    if error:
        to_msg.error(error)
    else:
        outcome = actions.send_test_email(current, to.strip())
        (st.success if outcome.ok else st.error)(outcome.message)

# --- Reminders and business -----------------------------------------------------------------
st.subheader("Reminders and business")
with st.form("business"):
    offsets = st.text_input("Reminder offsets (days after due)",
                            value=", ".join(str(o) for o in current["reminders.offsets_days"]), key="offsets")
    offsets_msg = st.empty()
    hour = st.number_input("Reminder send hour (local)", 0, 23, int(current["reminders.send_hour"]), key="send_hour")
    tones = st.text_input("Reminder tones, one per offset (upcoming, gentle, firm, final)",
                          value=str(current["reminders.tones"] or ""), key="tones",
                          help="Empty: the tone escalates automatically from gentle to final.")
    tones_msg = st.empty()
    business = st.text_input("Business name", value=str(current["business.name"]), key="business_name")
    business_msg = st.empty()
    tz = st.text_input("Time zone", value=str(current["business.timezone"]), key="business_tz")
    tz_msg = st.empty()
    currency = st.text_input("Currency", value=str(current["business.currency"]), key="business_currency",
                             help="ISO code (usd, eur, jpy...). Amounts use its own minor unit; currencies the CRM "
                             "cannot bill correctly (three-decimal ones such as KWD) are refused.")
    currency_msg = st.empty()
    terms = st.number_input("Default payment terms (days)", 0, 365, int(current["invoice.payment_terms_days"]),
                            key="terms")
    save_business = st.form_submit_button("Save")
if save_business:
    parsed, offsets_error = rules.parse_offsets(offsets)
    errors = {offsets_msg: offsets_error, tones_msg: tone_error(tones),
              business_msg: name_error(business, "Business name"),
              tz_msg: rules.timezone_error(tz), currency_msg: rules.currency_error(currency)}
    for slot, message in errors.items():
        if message:
            slot.error(message)
    if not any(errors.values()):
        save({"reminders.offsets_days": parsed, "reminders.send_hour": int(hour),
              "reminders.tones": ",".join(parse_tones(tones)), "business.name": business.strip(),
              "business.timezone": tz.strip(), "business.currency": currency.strip().lower(),
              "invoice.payment_terms_days": int(terms)}, "Settings saved.")
