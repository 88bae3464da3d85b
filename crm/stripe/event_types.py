"""The Stripe event types the CRM acts on: the one list, in one place.

It is exactly the set the SQL dispatcher crm.apply_stripe_event switches on (its CASE);
any other type is recorded and acknowledged as 'ignored'. Webhook endpoint registration
(Settings, the local demo, the soak), the reconciler's event listing and the tests all
subscribe this list, and tests/test_stripe_event_types.py holds it to the SQL function.
"""

from __future__ import annotations

HANDLED_EVENT_TYPES: tuple[str, ...] = (
    # crm.apply_stripe_invoice_event
    "invoice.paid", "invoice.payment_succeeded", "invoice.payment_failed", "invoice.voided",
    "invoice.marked_uncollectible", "invoice.finalized", "invoice.sent", "invoice.updated",
    # crm.apply_stripe_invoice_payment
    "invoice_payment.paid",
    # crm.apply_stripe_refund_event
    "charge.refunded", "refund.created", "refund.updated", "refund.failed",
    # crm.apply_stripe_payment_intent_event (bank debits: processing, then paid or failed);
    # payment_intent.payment_failed through crm.apply_stripe_payment_failed (the decline reason)
    "payment_intent.processing", "payment_intent.payment_failed",
    # crm.apply_stripe_dispute_event
    "charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
)

# The events that say an invoice was paid (whichever Stripe sends first): go-live's test
# invoice step waits for one of them to prove Stripe reaches the sidecar.
PAYMENT_EVENT_TYPES: tuple[str, ...] = ("invoice.paid", "invoice.payment_succeeded", "invoice_payment.paid")
