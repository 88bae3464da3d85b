-- Collections page at 1M invoices, and the reminder queue's cancel sweep (both found by the
-- benchmarks: bench/, docs/PERFORMANCE.md).
--
-- Covering indexes: the page's windowed aggregates (26 weeks of payments and of sent
-- invoices, 90 days of time to pay, the open balances) read their columns from the index
-- alone (index-only scans) instead of visiting ~170k heap pages' worth of rows each time.

-- Time to pay (tiles' medians, distribution, weekly median): paid_at window, sent_at.
CREATE INDEX IF NOT EXISTS invoices_paid_at_sent_idx ON crm.invoices (paid_at) INCLUDE (sent_at)
    WHERE paid_at IS NOT NULL;
-- Invoiced per week, DSO's invoiced in 90 days, the funnel's sent invoices.
CREATE INDEX IF NOT EXISTS invoices_sent_at_amount_idx ON crm.invoices (sent_at)
    INCLUDE (id, status, amount_due_cents, paid_at) WHERE sent_at IS NOT NULL;
-- Collected per week and this month (gross, fees).
CREATE INDEX IF NOT EXISTS payments_paid_at_amount_idx ON crm.payments (paid_at) INCLUDE (amount_cents, fee_cents);
-- Outstanding, overdue and AR aging: the open invoices' balances by due date and customer.
CREATE INDEX IF NOT EXISTS invoices_open_balance_idx ON crm.invoices (due_date)
    INCLUDE (customer_id, amount_due_cents, amount_paid_cents) WHERE status = 'open';
-- The funnel's email stages per invoice email.
CREATE INDEX IF NOT EXISTS email_messages_invoice_stages_idx ON crm.email_messages (invoice_id)
    INCLUDE (delivered_at, first_opened_at, first_clicked_at) WHERE kind = 'invoice';
-- What reminders did: reminders sent in the window and their invoices.
CREATE INDEX IF NOT EXISTS reminders_sent_invoice_idx ON crm.reminders (sent_at) INCLUDE (invoice_id)
    WHERE status = 'sent';

-- The cancel sweep of crm.queue_due_reminders_within (0005) had no send_at bound, so every
-- five-minute run visited every live reminder and its invoice (8.5k at 1M invoices). Same
-- function as 0005 with that sweep bounded by the hand-off window; this index serves the
-- bounded sweep (live reminders by send_at).
CREATE INDEX IF NOT EXISTS reminders_live_send_at_idx ON crm.reminders (send_at)
    WHERE status IN ('pending', 'queued');

CREATE OR REPLACE FUNCTION crm.queue_due_reminders_within(p_now timestamptz, p_window interval)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_queued integer;
BEGIN
    -- pg_cron and a sidecar (or two sidecars) may overlap: one run at a time is enough.
    IF NOT pg_try_advisory_xact_lock(hashtext('crm.queue_due_reminders')) THEN
        RETURN 0;
    END IF;

    -- Defence in depth: the payment transaction cancels these itself. Bounded like the other
    -- two statements: a reminder of a closed invoice is cancelled here once it comes due, and
    -- nothing outside the window could be queued anyway.
    WITH target AS (
        SELECT r.id, r.status AS old_status, i.status AS invoice_status
          FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id
         WHERE r.status IN ('pending', 'queued') AND r.send_at <= p_now + p_window
           AND i.status IN ('paid', 'void', 'uncollectible')
         ORDER BY r.id
           FOR UPDATE OF r
    ), done AS (
        UPDATE crm.reminders r
           SET status = 'cancelled', cancel_reason = t.invoice_status, cancelled_at = p_now
          FROM target t WHERE r.id = t.id
        RETURNING r.id, t.old_status, t.invoice_status
    )
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
    SELECT 'reminder', id, old_status, 'cancelled', 'system', 'queue_due_reminders',
           jsonb_build_object('cancel_reason', invoice_status)
      FROM done;

    -- Opted out after the rows were made: cancelled as each comes due, so the timeline says why.
    WITH target AS (
        SELECT r.id
          FROM crm.reminders r
          JOIN crm.invoices i ON i.id = r.invoice_id
          JOIN crm.customers c ON c.id = i.customer_id
         WHERE r.status = 'pending' AND r.send_at <= p_now + p_window AND c.reminders_opt_out
         ORDER BY r.id
           FOR UPDATE OF r
    ), done AS (
        UPDATE crm.reminders r
           SET status = 'cancelled', cancel_reason = 'opted_out', cancelled_at = p_now
          FROM target t WHERE r.id = t.id
        RETURNING r.id
    )
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
    SELECT 'reminder', id, 'pending', 'cancelled', 'system', 'queue_due_reminders',
           '{"cancel_reason": "opted_out"}'::jsonb
      FROM done;

    WITH locked AS (
        SELECT r.id, r.invoice_id, r.sequence, r.send_at
          FROM crm.reminders r
          JOIN crm.invoices i ON i.id = r.invoice_id
          JOIN crm.customers c ON c.id = i.customer_id
         WHERE r.status = 'pending' AND r.send_at <= p_now + p_window
           AND i.status = 'open' AND NOT c.reminders_opt_out
         ORDER BY r.id
           FOR UPDATE OF r
    ), ranked AS (
        SELECT id, send_at <= p_now AS overdue,
               row_number() OVER (PARTITION BY invoice_id ORDER BY send_at DESC, sequence DESC) AS rn
          FROM locked
    ), superseded AS (
        UPDATE crm.reminders r
           SET status = 'cancelled', cancel_reason = 'superseded', cancelled_at = p_now
          FROM ranked k WHERE r.id = k.id AND k.rn > 1 AND k.overdue
        RETURNING r.id
    ), queued AS (
        UPDATE crm.reminders r
           SET status = 'queued', queued_at = p_now
          FROM ranked k WHERE r.id = k.id AND (k.rn = 1 OR NOT k.overdue)
        RETURNING r.id
    ), audit AS (
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        SELECT 'reminder', id, 'pending', 'cancelled', 'system', 'queue_due_reminders',
               '{"cancel_reason": "superseded"}'::jsonb FROM superseded
        UNION ALL
        SELECT 'reminder', id, 'pending', 'queued', 'system', 'queue_due_reminders', '{}'::jsonb FROM queued
    )
    SELECT count(*) INTO v_queued FROM queued;
    RETURN v_queued;
END;
$$;
