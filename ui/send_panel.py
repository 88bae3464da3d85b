"""Send via Stripe, resend, void: confirmation, progress while it runs, the result.

crm.send.workflow is imported inside the handlers: the pages load even where the send
workflow is not installed, and the import cost is paid only when someone sends.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from crm.users.auth import Session
from ui.plain import plain
from ui.widgets import money

STEP_LABELS = {
    "validate": "Checking the invoice",
    "customer": "Finding or creating the Stripe customer",
    "invoice": "Creating the Stripe invoice",
    "lines": "Adding the lines",
    "finalize": "Finalizing (pay link)",
    "email": "Emailing the customer",
    "complete": "Done",
}


def _result_key(invoice_id: int) -> str:
    return f"send_result_{invoice_id}"


def _run_send(invoice_id: int, session: Session) -> None:
    from crm.send.workflow import SendRefused, send_invoice

    with st.status("Sending via Stripe…", expanded=True) as box:
        def progress(step: str) -> None:
            box.write(STEP_LABELS.get(step, step) + "…")

        try:
            result = send_invoice(invoice_id, actor=session.email, progress=progress)
        except SendRefused as exc:
            box.update(label="Not sent", state="error")
            st.session_state[_result_key(invoice_id)] = {"ok": False, "failed_step": "validate",
                                                          "message": str(exc), "pay_url": None, "refused": True}
            return
        box.update(label="Sent" if result.ok else "Send failed", state="complete" if result.ok else "error")
        if result.pay_url:
            # Shown the moment Stripe has it: the page's rerun below (seconds on a busy machine)
            # replaces it with the open invoice's own copy of the link.
            box.code(result.pay_url, language=None, wrap_lines=True)
    st.session_state[_result_key(invoice_id)] = {"ok": result.ok, "failed_step": result.failed_step,
                                                  "message": result.message, "pay_url": result.pay_url,
                                                  "refused": False}
    st.rerun()


def show_result(invoice_id: int, session: Session, pay_link: bool = True) -> None:
    """The last Send's outcome; `pay_link=False` when the page shows the link elsewhere (an open
    invoice's actions), so it appears once."""
    result: dict[str, Any] | None = st.session_state.get(_result_key(invoice_id))
    if not result:
        return
    if result["ok"]:
        st.success(f"Sent. {plain(result['message'])}")
        if result["pay_url"] and pay_link:
            st.markdown("Pay link (copy with the button on the right):")
            st.code(result["pay_url"], language=None, wrap_lines=True)
        return
    where = STEP_LABELS.get(result["failed_step"] or "", result["failed_step"] or "")
    message = plain(result["message"])  # Stripe's and Resend's words, the customer's address
    st.error(f"Not sent — {where}: {message}" if where else f"Not sent: {message}")
    if st.button("Retry send", key=f"retry_send_{invoice_id}", type="primary"):
        st.session_state.pop(_result_key(invoice_id), None)
        _run_send(invoice_id, session)


def send_button(invoice: dict[str, Any], session: Session) -> None:
    """Send via Stripe on a draft (or a failed 'sending' attempt): confirm first."""
    invoice_id = int(invoice["id"])
    confirm_key = f"confirm_send_{invoice_id}"
    if st.button("Send via Stripe", key=f"send_{invoice_id}", type="primary", icon=":material/send:"):
        st.session_state[confirm_key] = True
    if st.session_state.get(confirm_key):
        st.warning(confirm_text(invoice))
        yes, no = st.columns(2)
        if yes.button("Confirm send", key=f"confirm_send_btn_{invoice_id}", type="primary"):
            st.session_state.pop(confirm_key, None)
            st.session_state.pop(_result_key(invoice_id), None)
            _run_send(invoice_id, session)
        if no.button("Cancel", key=f"cancel_send_{invoice_id}"):
            st.session_state.pop(confirm_key, None)
            st.rerun()


def confirm_text(invoice: dict[str, Any]) -> str:
    """Exactly what the email will say: the amount from the draft's lines, to whom, and when due."""
    to = plain(invoice.get("customer_email") or "(no email on file: Send will refuse)")
    lines = int(invoice.get("line_count") or 0)
    due = invoice.get("due_date")
    return (f"Email {plain(invoice['customer'])} ({to}) an invoice for "
            f"**{money(invoice['amount_due_cents'], invoice['currency'])}** "
            f"({lines} line{'' if lines == 1 else 's'}"
            + (f", due {due:%b} {due.day}, {due.year}" if due else "") + ") with a pay link? Stripe finalizes "
            "the invoice, so its lines can no longer change.")


def open_invoice_actions(invoice: dict[str, Any], session: Session) -> None:
    """Resend the email, copy the pay link, void (with a confirmation)."""
    invoice_id = int(invoice["id"])
    if invoice.get("hosted_invoice_url"):
        st.markdown("Pay link (copy with the button on the right):")
        st.code(invoice["hosted_invoice_url"], language=None, wrap_lines=True)
    left, right = st.columns(2)
    if left.button("Resend email", key=f"resend_{invoice_id}", icon=":material/forward_to_inbox:"):
        from crm.send.workflow import SendRefused, resend_invoice_email

        try:
            with st.spinner("Sending the email again…"):
                result = resend_invoice_email(invoice_id, actor=session.email)
        except SendRefused as exc:
            st.error(plain(exc))
        else:
            (st.success if result.ok else st.error)(plain(result.message))
    with right.popover("Void invoice", icon=":material/block:"):
        st.write("Voiding cancels the pay link and any pending reminders. It cannot be undone.")
        if st.button("Void it", key=f"void_{invoice_id}", type="primary"):
            from crm.send.workflow import SendRefused, void_invoice

            try:
                void_invoice(invoice_id, actor=session.email)
            except SendRefused as exc:
                st.error(plain(exc))
            else:
                st.session_state["_flash"] = ("success", f"Invoice {invoice_id} voided.")
                st.rerun()
