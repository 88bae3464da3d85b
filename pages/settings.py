"""Settings (owner), in sections: Business, Payments (Stripe), Email (Resend), Texts, Reminders,
Go live, and Advanced (ids, event names, workers, signing secrets). Secrets are stored encrypted
and shown masked; a value set by an environment variable wins and is shown as such. The rules
(what each go-live step needs, when live mode may be switched on) are in crm/golive/steps.py."""

from __future__ import annotations

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
from ui import golive_panel, settings_health, texts_settings
from ui import settings_actions as actions
from ui.plain import plain
from ui.session import require_owner
from ui.widgets import clock, settings, show_flash

session = require_owner()
st.title("Settings")
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


now = clock(current)
if queue_job_problem(health["queue_job"]):
    st.warning(queue_job_problem(health["queue_job"]))  # reminders are at stake: above every section
business_tab, payments_tab, email_tab, texts_tab, reminders_tab, golive_tab, advanced_tab = st.tabs(
    ["Business", "Payments", "Email", "Texts", "Reminders", "Go live", "Advanced"],
    # In the URL (?section=Payments): a save's rerun or a reload stays in the same section.
    key="section", bind="query-params")

with business_tab:
    st.caption("How the business appears on invoices, emails and the pay page, and its calendar.")
    with st.form("business"):
        business = st.text_input("Business name", value=str(current["business.name"]), key="business_name")
        business_msg = st.empty()
        tz_now = str(current["business.timezone"])
        tz_names = rules.timezone_choices(tz_now)
        tz = st.selectbox("Time zone", tz_names, index=tz_names.index(tz_now), key="business_tz",
                          help="Due dates, 'today', reminders and every time shown use this zone.")
        cur_now = str(current["business.currency"]).lower()
        codes = rules.currency_choices(cur_now)
        currency = st.selectbox("Currency", codes, index=codes.index(cur_now), key="business_currency",
                                format_func=rules.currency_label,
                                help="Currencies the CRM bills correctly (three-decimal ones such as KWD are "
                                     "not offered).")
        currency_msg = st.empty()
        terms = st.number_input("Default payment terms (days)", 0, 365, int(current["invoice.payment_terms_days"]),
                                key="terms")
        save_business = st.form_submit_button("Save business settings")
    if save_business:
        errors = {business_msg: name_error(business, "Business name"), currency_msg: rules.currency_error(currency)}
        for slot, message in errors.items():
            if message:
                slot.error(plain(message))  # may quote what was typed
        if not any(errors.values()):
            save({"business.name": business.strip(), "business.timezone": tz,
                  "business.currency": currency.lower(), "invoice.payment_terms_days": int(terms)},
                 "Business settings saved.")

with payments_tab:
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
        st.error(f"{len(current.undecryptable)} stored secret(s) cannot be decrypted with CRM_SECRET_KEY (it "
                 "changed or was lost): webhooks are refused until they are re-entered below, or until "
                 "CRM_SECRET_KEY is set back (see `python -m crm rotate-secret-key`).")

    st.subheader("Stripe keys")
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
                msg.error(plain(error))
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
        st.caption(f"Subscribes to the {len(HANDLED_EVENT_TYPES)} Stripe events the CRM handles (listed under "
                   "Advanced). Registering again updates the endpoint in place (same signing secret).")
        register = st.form_submit_button("Register webhook endpoint")
    if register:
        error = rules.webhook_url_error(url)
        if error:
            url_msg.error(plain(error))
        else:
            outcome = actions.register_webhook(current, url.strip(), session.user_id, hook_mode)
            (st.success if outcome.ok else st.error)(plain(outcome.message))

    st.subheader("Webhook health")
    st.caption("Is Stripe reaching the CRM? Per mode: the endpoint at Stripe, deliveries in the last 24 h and "
               "missed deliveries (events reconcile found that never arrived by webhook).")
    settings_health.webhook_summary(current, now)

with email_tab:
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
                  from_msg: header_error(from_address, "From address")
                  or email_error(actions.bare_address(from_address)),
                  reply_msg: header_error(reply_to, "Reply-to") or email_error(reply_to, required=False),
                  hook_msg: None if not resend_hook.strip() or resend_hook.strip().startswith("whsec_")
                  else "A Resend (Svix) webhook secret starts with whsec_."}
        for slot, message in errors.items():
            if message:
                slot.error(plain(message))  # may quote what was typed
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
        (st.success if outcome.ok else st.warning)(plain(outcome.message))
    with right.form("test_email"):
        to = st.text_input("Send a test email to", key="test_email_to")
        to_msg = st.empty()
        send_test = st.form_submit_button("Send test email")
    if send_test:
        error = email_error(to)
        if error:
            to_msg.error(plain(error))
        else:
            outcome = actions.send_test_email(current, to.strip())
            (st.success if outcome.ok else st.error)(plain(outcome.message))


with texts_tab:
    texts_settings.render(current, session)

with reminders_tab:
    with st.form("reminders"):
        offsets = st.text_input("Reminder offsets (days after due)",
                                value=", ".join(str(o) for o in current["reminders.offsets_days"]), key="offsets")
        offsets_msg = st.empty()
        hour = st.number_input("Reminder send hour (local)", 0, 23, int(current["reminders.send_hour"]),
                               key="send_hour")
        tones = st.text_input("Reminder tones, one per offset (upcoming, gentle, firm, final)",
                              value=str(current["reminders.tones"] or ""), key="tones",
                              help="Empty: the tone escalates automatically from gentle to final.")
        tones_msg = st.empty()
        save_reminders = st.form_submit_button("Save reminders")
    if save_reminders:
        parsed, offsets_error = rules.parse_offsets(offsets)
        errors = {offsets_msg: offsets_error, tones_msg: tone_error(tones)}
        for slot, message in errors.items():
            if message:
                slot.error(plain(message))  # may quote what was typed
        if not any(errors.values()):
            save({"reminders.offsets_days": parsed, "reminders.send_hour": int(hour),
                  "reminders.tones": ",".join(parse_tones(tones))}, "Reminder settings saved.")

with golive_tab:
    golive_panel.render(current, session)

with advanced_tab:
    st.subheader("Webhook endpoints")
    settings_health.webhook_details(current, now)
    # Undecryptable: nothing to list; the Payments section says so and takes a new one.
    stored_secrets = ([] if f"stripe.{mode}.webhook_secrets" in current.undecryptable
                      else current.stripe_webhook_secret_entries(mode))
    if stored_secrets and current.sources[f"stripe.{mode}.webhook_secrets"] != "env":
        st.write(f"Signing secrets stored for {mode} mode")
        origin = "sandbox" if current.stripe_sandboxed else "stripe"
        for i, entry in enumerate(stored_secrets):
            cols = st.columns([3, 4, 1])
            cols[0].write(f"`{mask(entry.secret)}` · {entry.endpoint_id or 'endpoint unknown'}")
            cols[1].caption(f"{webhook_secrets.status(entry, origin, now.now)} · "
                            f"{webhook_secrets.describe_age(entry, now.now)}")
            if cols[2].button("Remove", key=f"remove_secret_{mode}_{i}"):
                with connection() as conn:
                    remove_webhook_secret(conn, current, mode, i, session.user_id)
                st.session_state["_flash"] = ("success", f"Removed signing secret {mask(entry.secret)}.")
                st.rerun()

    st.caption("Stripe events the endpoint subscribes to: " + ", ".join(HANDLED_EVENT_TYPES) + ".")
    st.subheader("Workers")
    settings_health.workers(health, now)
