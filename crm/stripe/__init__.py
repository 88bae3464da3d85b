"""Everything that talks to or about Stripe: the one gateway for every call, the webhook
endpoint per mode and its signing secrets, the event types and shape rules, webhook
health, and reconciliation with Stripe's event log."""
