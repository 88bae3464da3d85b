"""The CRM core shared by the dashboard and the webhook sidecar: the business rules and
workflows (send, reminders, reconcile, Stripe events, settings, auth) and the one module
per vendor. It imports only db/ of ours; the tools in ops/ and the UI in ui/ sit above it."""
