-- Overdue reminders and Resend email tracking.
--
-- crm.queue_due_reminders(now) is the one queueing function (pg_cron calls it where pg_cron
-- exists, the sidecar otherwise). The dispatcher claims queued reminders with a lease, hands
-- each to Resend with scheduled_at, and records the hand-off with one function call; the
-- cancel worker records what Resend said about a cancel; crm.apply_resend_event applies one
-- Svix-signed webhook (dedup on svix-id, email status, invoice flag, reminder sent).

-- A dispatcher's claim on a queued reminder: who (token) and until when (lease). A crashed
-- dispatcher's lease runs out and another one re-sends with the same idempotency key.
ALTER TABLE crm.reminders
    ADD COLUMN claim_token   uuid,
    ADD COLUMN claimed_until timestamptz;

-- The exact Resend request of an email, stored before it is sent: a retry after a crash
-- sends the same bytes under the same idempotency key, so Resend replays the first result
-- instead of answering 409 (same key, other payload) when the amount or clock has moved.
ALTER TABLE crm.email_messages ADD COLUMN request jsonb;

CREATE INDEX email_events_orphan_idx ON crm.email_events (resend_id) WHERE email_message_id IS NULL;

-- Queue what is due within the hand-off window, for open invoices of customers who did not
-- opt out. After an outage several reminders of one invoice can be due at once: only the
-- latest one in the window goes out; the earlier overdue ones are cancelled as superseded.
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

    -- Defence in depth: the payment transaction cancels these itself.
    WITH target AS (
        SELECT r.id, r.status AS old_status, i.status AS invoice_status
          FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id
         WHERE r.status IN ('pending', 'queued') AND i.status IN ('paid', 'void', 'uncollectible')
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

-- The entry point pg_cron and the sidecar call (same signature as the 0002 stub): a hand-off
-- window of one day, so a reminder sits at Resend with scheduled_at for about a day and a
-- late payment is stopped by Resend's cancel API.
CREATE OR REPLACE FUNCTION crm.queue_due_reminders(p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql AS $$
    SELECT crm.queue_due_reminders_within(p_now, interval '1 day');
$$;

-- Resend accepted a reminder (p_resend_id): record it, unless another dispatcher took the
-- claim over. A reminder cancelled while it was being handed off keeps its Resend id and
-- is flagged for the cancel worker, so it is stopped at Resend too.
CREATE OR REPLACE FUNCTION crm.record_reminder_handoff(p_reminder_id bigint, p_token uuid,
                                                       p_resend_id text, p_now timestamptz)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r crm.reminders%ROWTYPE;
    v_invoice_status text;
BEGIN
    -- Lock order everywhere: email_messages, then reminders, then invoices.
    PERFORM 1 FROM crm.email_messages WHERE reminder_id = p_reminder_id FOR UPDATE;
    SELECT * INTO r FROM crm.reminders WHERE id = p_reminder_id FOR UPDATE;
    IF NOT FOUND OR r.claim_token IS DISTINCT FROM p_token THEN
        RETURN 'claim_lost';
    END IF;
    SELECT status INTO v_invoice_status FROM crm.invoices WHERE id = r.invoice_id;

    IF r.status = 'queued' AND v_invoice_status = 'open' THEN
        UPDATE crm.reminders
           SET status = 'scheduled', resend_id = p_resend_id, handed_off_at = p_now, claim_token = NULL,
               claimed_until = NULL, attempts = 0, last_error = NULL
         WHERE id = p_reminder_id;
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('reminder', p_reminder_id, 'queued', 'scheduled', 'system', 'reminder_dispatcher',
                jsonb_build_object('resend_id', p_resend_id));
    ELSIF r.status IN ('queued', 'cancelled') THEN
        UPDATE crm.reminders
           SET status = 'cancelled', resend_id = p_resend_id, handed_off_at = p_now, claim_token = NULL,
               claimed_until = NULL, resend_cancel = 'requested', next_attempt_at = p_now, attempts = 0,
               cancel_reason = coalesce(cancel_reason,
                                        CASE WHEN v_invoice_status IN ('paid', 'void', 'uncollectible')
                                             THEN v_invoice_status ELSE 'manual' END),
               cancelled_at = coalesce(cancelled_at, p_now)
         WHERE id = p_reminder_id;
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('reminder', p_reminder_id, r.status, 'cancelled', 'system', 'reminder_dispatcher',
                jsonb_build_object('resend_id', p_resend_id, 'resend_cancel', 'requested'));
    ELSE
        RETURN r.status;
    END IF;
    -- After the reminder row: this fires the trigger that adopts webhook events that
    -- arrived before we knew the Resend id (they may mark the reminder sent).
    UPDATE crm.email_messages
       SET resend_id = p_resend_id, status = CASE WHEN status = 'pending' THEN 'scheduled' ELSE status END,
           error = NULL
     WHERE reminder_id = p_reminder_id;
    RETURN CASE WHEN r.status = 'queued' AND v_invoice_status = 'open' THEN 'scheduled' ELSE 'cancel_requested' END;
END;
$$;

-- What Resend said to a cancel: 'cancelled', 'too_late' (it was already sent), or 'failed'
-- (retry at p_retry_at). Only acts on a cancel still requested.
CREATE OR REPLACE FUNCTION crm.record_reminder_cancel(p_reminder_id bigint, p_outcome text, p_now timestamptz,
                                                      p_error text DEFAULT NULL,
                                                      p_retry_at timestamptz DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r crm.reminders%ROWTYPE;
    v_invoice_status text;
BEGIN
    PERFORM 1 FROM crm.email_messages WHERE reminder_id = p_reminder_id FOR UPDATE;
    SELECT * INTO r FROM crm.reminders WHERE id = p_reminder_id FOR UPDATE;
    IF NOT FOUND OR r.resend_cancel IS DISTINCT FROM 'requested' THEN
        RETURN 'not_requested';
    END IF;
    IF p_outcome = 'failed' THEN
        UPDATE crm.reminders SET attempts = attempts + 1, last_error = left(p_error, 500), next_attempt_at = p_retry_at
         WHERE id = p_reminder_id;
        RETURN 'failed';
    END IF;
    SELECT status INTO v_invoice_status FROM crm.invoices WHERE id = r.invoice_id;
    IF p_outcome = 'cancelled' THEN
        UPDATE crm.reminders
           SET status = 'cancelled', resend_cancel = 'done', next_attempt_at = NULL, last_error = NULL,
               cancelled_at = coalesce(cancelled_at, p_now),
               cancel_reason = coalesce(cancel_reason,
                                        CASE WHEN v_invoice_status IN ('paid', 'void', 'uncollectible')
                                             THEN v_invoice_status ELSE 'manual' END)
         WHERE id = p_reminder_id;
        UPDATE crm.email_messages SET status = 'cancelled'
         WHERE reminder_id = p_reminder_id AND status IN ('pending', 'scheduled');
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('reminder', p_reminder_id, r.status, 'cancelled', 'system', 'reminder_cancel',
                jsonb_build_object('resend_id', r.resend_id, 'resend_cancel', 'done'));
        RETURN 'done';
    ELSIF p_outcome = 'too_late' THEN
        UPDATE crm.reminders
           SET status = 'sent', resend_cancel = 'too_late', next_attempt_at = NULL, last_error = NULL,
               sent_at = coalesce(sent_at, p_now)
         WHERE id = p_reminder_id;
        UPDATE crm.email_messages SET status = 'sent', sent_at = coalesce(sent_at, p_now)
         WHERE reminder_id = p_reminder_id AND status IN ('pending', 'scheduled', 'cancelled');
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('reminder', p_reminder_id, r.status, 'sent', 'system', 'reminder_cancel',
                jsonb_build_object('resend_id', r.resend_id, 'resend_cancel', 'too_late',
                                   'note', 'Resend had already sent it when the cancel arrived'));
        RETURN 'too_late';
    END IF;
    RAISE EXCEPTION 'unknown cancel outcome %', p_outcome USING ERRCODE = '22023';
END;
$$;

-- Later states win; an event arriving out of order never moves an email backwards.
CREATE OR REPLACE FUNCTION crm.email_status_rank(p_status text)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_status
        WHEN 'pending' THEN 0 WHEN 'scheduled' THEN 1 WHEN 'cancelled' THEN 1 WHEN 'sent' THEN 2
        WHEN 'delivery_delayed' THEN 3 WHEN 'delivered' THEN 4 WHEN 'failed' THEN 5
        WHEN 'suppressed' THEN 5 WHEN 'bounced' THEN 6 WHEN 'complained' THEN 7 ELSE 0 END;
$$;

-- What one Resend event does to our email record, its invoice and its reminder. The caller
-- holds the email_messages row lock.
CREATE OR REPLACE FUNCTION crm.apply_email_event_effects(p_message_id bigint, p_svix_id text, p_type text,
                                                         p_occurred_at timestamptz, p_payload jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m crm.email_messages%ROWTYPE;
    v_new text;
    v_attention text;
    v_detail text;
    v_invoice_status text;
    r crm.reminders%ROWTYPE;
BEGIN
    SELECT * INTO m FROM crm.email_messages WHERE id = p_message_id;
    v_new := CASE p_type
        WHEN 'email.scheduled' THEN 'scheduled' WHEN 'email.sent' THEN 'sent'
        WHEN 'email.delivered' THEN 'delivered' WHEN 'email.delivery_delayed' THEN 'delivery_delayed'
        WHEN 'email.bounced' THEN 'bounced' WHEN 'email.complained' THEN 'complained'
        WHEN 'email.failed' THEN 'failed' WHEN 'email.suppressed' THEN 'suppressed' END;
    v_detail := left(coalesce(p_payload #>> '{data,bounce,message}', p_payload #>> '{data,failed,reason}',
                              p_payload #>> '{data,suppressed,message}', p_type), 300);

    UPDATE crm.email_messages SET
        status = CASE WHEN v_new IS NOT NULL AND crm.email_status_rank(v_new) > crm.email_status_rank(status)
                      THEN v_new ELSE status END,
        sent_at = CASE WHEN p_type IN ('email.sent', 'email.delivered', 'email.delivery_delayed', 'email.opened',
                                       'email.clicked', 'email.bounced', 'email.complained')
                       THEN coalesce(sent_at, p_occurred_at) ELSE sent_at END,
        delivered_at = CASE WHEN p_type = 'email.delivered' THEN coalesce(delivered_at, p_occurred_at)
                            ELSE delivered_at END,
        first_opened_at = CASE WHEN p_type = 'email.opened' THEN least(first_opened_at, p_occurred_at)
                               ELSE first_opened_at END,
        open_count = open_count + CASE WHEN p_type = 'email.opened' THEN 1 ELSE 0 END,
        first_clicked_at = CASE WHEN p_type = 'email.clicked' THEN least(first_clicked_at, p_occurred_at)
                                ELSE first_clicked_at END,
        click_count = click_count + CASE WHEN p_type = 'email.clicked' THEN 1 ELSE 0 END,
        error = CASE WHEN p_type IN ('email.bounced', 'email.complained', 'email.failed', 'email.suppressed')
                     THEN v_detail ELSE error END
     WHERE id = p_message_id;
    IF v_new IS NOT NULL AND crm.email_status_rank(v_new) > crm.email_status_rank(m.status) THEN
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('email', p_message_id, m.status, v_new, 'resend_event', p_svix_id,
                jsonb_build_object('resend_id', m.resend_id, 'type', p_type));
    END IF;

    -- A customer who never got the invoice or its reminder is something staff must fix.
    v_attention := CASE p_type WHEN 'email.bounced' THEN 'email_bounced' WHEN 'email.suppressed' THEN 'email_bounced'
                               WHEN 'email.complained' THEN 'email_complained'
                               WHEN 'email.failed' THEN 'email_not_sent' END;
    IF v_attention IS NOT NULL AND m.invoice_id IS NOT NULL AND m.kind IN ('invoice', 'reminder') THEN
        SELECT status INTO v_invoice_status FROM crm.invoices WHERE id = m.invoice_id FOR UPDATE;
        IF v_invoice_status IN ('sending', 'open') THEN
            UPDATE crm.invoices
               SET attention = v_attention,
                   attention_detail = left(format('%s email to %s: %s', initcap(m.kind), m.to_address, v_detail), 500)
             WHERE id = m.invoice_id AND attention IS DISTINCT FROM 'total_mismatch';
            IF FOUND THEN
                INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
                VALUES ('invoice', m.invoice_id, v_invoice_status, v_invoice_status, 'resend_event', p_svix_id,
                        jsonb_build_object('attention', v_attention, 'email_message_id', p_message_id,
                                           'resend_id', m.resend_id));
            END IF;
        END IF;
    END IF;

    -- A reminder whose email went out is sent, even if a cancel was on its way (too late).
    IF m.reminder_id IS NOT NULL AND p_type IN ('email.sent', 'email.delivered', 'email.delivery_delayed',
                                                'email.opened', 'email.clicked', 'email.bounced',
                                                'email.complained') THEN
        SELECT * INTO r FROM crm.reminders WHERE id = m.reminder_id FOR UPDATE;
        IF r.status IN ('queued', 'scheduled')
           OR (r.status = 'cancelled' AND r.resend_cancel = 'requested') THEN
            UPDATE crm.reminders
               SET status = 'sent', sent_at = coalesce(sent_at, p_occurred_at),
                   resend_cancel = CASE WHEN resend_cancel = 'requested' THEN 'too_late' ELSE resend_cancel END,
                   next_attempt_at = CASE WHEN resend_cancel = 'requested' THEN NULL ELSE next_attempt_at END
             WHERE id = r.id;
            INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
            VALUES ('reminder', r.id, r.status, 'sent', 'resend_event', p_svix_id,
                    jsonb_build_object('resend_id', m.resend_id, 'type', p_type,
                                       'resend_cancel', CASE WHEN r.resend_cancel = 'requested'
                                                             THEN 'too_late' END));
        END IF;
    END IF;
END;
$$;

-- One Svix-signed Resend webhook, applied once: the email_events insert is the dedup ledger
-- and commits with its effects. Returns 'applied', 'duplicate' or 'unmatched' (an email we
-- do not know yet: kept, and applied when its Resend id is recorded).
CREATE OR REPLACE FUNCTION crm.apply_resend_event(p_svix_id text, p_type text, p_resend_id text,
                                                  p_occurred_at timestamptz, p_payload jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_message_id bigint;
BEGIN
    SELECT id INTO v_message_id FROM crm.email_messages WHERE resend_id = p_resend_id FOR UPDATE;
    INSERT INTO crm.email_events (id, email_message_id, resend_id, type, occurred_at, payload)
    VALUES (p_svix_id, v_message_id, p_resend_id, p_type, p_occurred_at, p_payload)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;
    IF v_message_id IS NULL THEN
        RETURN 'unmatched';
    END IF;
    PERFORM crm.apply_email_event_effects(v_message_id, p_svix_id, p_type, p_occurred_at, p_payload);
    RETURN 'applied';
END;
$$;

-- Events can arrive before the sender has recorded the Resend id (Resend sends webhooks
-- as soon as it accepts the email). When the id is recorded, they are applied in order.
CREATE OR REPLACE FUNCTION crm.adopt_email_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    FOR e IN SELECT id, type, occurred_at, payload FROM crm.email_events
              WHERE resend_id = NEW.resend_id AND email_message_id IS NULL
              ORDER BY occurred_at, received_at, id
                FOR UPDATE
    LOOP
        UPDATE crm.email_events SET email_message_id = NEW.id WHERE id = e.id;
        PERFORM crm.apply_email_event_effects(NEW.id, e.id, e.type, e.occurred_at, e.payload);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER email_messages_adopt_events
    AFTER INSERT OR UPDATE OF resend_id ON crm.email_messages
    FOR EACH ROW WHEN (NEW.resend_id IS NOT NULL)
    EXECUTE FUNCTION crm.adopt_email_events();

-- The sweep for the narrow race the trigger cannot see (an event committed while the id
-- was being recorded): touching resend_id re-fires the trigger.
CREATE OR REPLACE FUNCTION crm.adopt_orphan_email_events()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    WITH orphans AS (
        SELECT DISTINCT m.id
          FROM crm.email_events e JOIN crm.email_messages m ON m.resend_id = e.resend_id
         WHERE e.email_message_id IS NULL
    )
    UPDATE crm.email_messages m SET resend_id = m.resend_id FROM orphans o WHERE m.id = o.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
