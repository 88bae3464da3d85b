-- Found by the benchmarks (bench/, docs/PERFORMANCE.md): crm.queue_due_reminders first
-- cancels pending or queued reminders of invoices no longer open, with no bound on send_at.
-- The partial indexes on send_at cannot serve `status IN ('pending', 'queued')`, so that
-- sweep read the whole reminders table on every five-minute run (3M rows at 1M invoices).
-- This index holds only live reminders, so the sweep reads those and nothing else.
CREATE INDEX IF NOT EXISTS reminders_live_idx ON crm.reminders (id) WHERE status IN ('pending', 'queued');
