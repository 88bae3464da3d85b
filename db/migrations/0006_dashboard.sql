-- Indexes the dashboard's lists and Collections aggregates need at 100,000 invoices.
-- The unfiltered invoice list is ordered by created_at; the others filter first.
CREATE INDEX IF NOT EXISTS invoices_created_idx ON crm.invoices (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS invoices_customer_created_idx ON crm.invoices (customer_id, created_at DESC);
CREATE INDEX IF NOT EXISTS jobs_created_idx ON crm.jobs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS reminders_sent_idx ON crm.reminders (sent_at) WHERE status = 'sent';
CREATE INDEX IF NOT EXISTS reminders_send_at_idx ON crm.reminders (send_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS email_events_received_idx ON crm.email_events (received_at DESC);
CREATE INDEX IF NOT EXISTS stripe_events_webhook_mode_idx ON crm.stripe_events (mode, received_at DESC)
    WHERE source = 'webhook';
