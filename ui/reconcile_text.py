"""What "Reconcile now" answers, in a few short sentences and local time (the CLI prints
crm.reconcile's own lines). Pure: no Streamlit, no queries."""

from __future__ import annotations

from typing import Any

from ui.plain import plain
from ui.widgets import Clock


def reconcile_summary(report: Any, now: Clock) -> str:
    """Markdown: a headline, what was checked, and one bullet per thing that needs a person."""
    if report.skipped:
        return "Another reconcile is running right now; nothing was done. Try again in a minute."
    c = report.counts()
    since = f" since {now.show(report.listed_since)} ({now.tz_label})" if report.listed_since else ""
    quiet = not (c["invoices_repaired"] or c["events_applied"] or report.stuck_sends or report.missing_at_stripe)
    head = ("Done, with errors." if not report.ok else "Everything matches Stripe." if quiet
            else "Done: see below.")
    text = [head, "",
            f"- Checked {c['events_seen']} Stripe events{since}: {c['events_applied']} the webhook had missed "
            "were applied.",
            f"- Checked {c['invoices_checked']} open or sending invoices: {c['invoices_repaired']} repaired."]
    text += [f"- Invoice #{r['invoice_id']} was repaired: now {r['to_status']}." for r in report.repairs
             if r["outcome"] == "applied"]
    text += [f"- Invoice #{i} stopped while sending: open it and press Send to finish." for i in report.stuck_sends]
    text += [f"- Invoice #{m['invoice_id']} is unknown to Stripe in {report.mode} mode." for m in
             report.missing_at_stripe]
    text += [f"- Error: {plain(e)}" for e in report.errors]  # Stripe's words
    return "\n".join(text)
