-- Indexes another index already covers, dropped: every one of them cost each webhook event
-- an index entry (an invoice's row version, a payment, a ledger row) and no query needs it.
-- Each has a twin with the same leading key and the same predicate (or none), found when the
-- webhook benchmark was compared against the code before issue #12 (docs/PERFORMANCE.md).
DROP INDEX crm.payments_paid_at_idx;            -- payments_paid_at_amount_idx (paid_at) INCLUDE (...)
DROP INDEX crm.invoices_paid_at_idx;            -- invoices_paid_at_sent_idx (paid_at) INCLUDE (sent_at), same predicate
DROP INDEX crm.invoices_sent_at_idx;            -- invoices_sent_at_amount_idx (sent_at) INCLUDE (...), same predicate
DROP INDEX crm.invoices_customer_idx;           -- invoices_customer_created_idx (customer_id, created_at DESC)
DROP INDEX crm.stripe_events_webhook_mode_idx;  -- stripe_events_webhook_health_idx (mode, source, received_at DESC)
