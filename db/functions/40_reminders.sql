-- Overdue reminders: stopping an invoice's reminders, the queueing function pg_cron (or the
-- sidecar) calls and its cron registration, the dispatcher's hand-off record, the cancel
-- worker's outcomes, and the flag for a reminder cancelled before its hand-off was recorded.
--
-- crm.queue_due_reminders(now) is the one queueing function. The dispatcher claims queued
-- reminders with a lease, hands each to Resend with scheduled_at, and records the hand-off
-- with one function call; the cancel worker records what Resend said about a cancel.

-- Pending and queued reminders are ours alone: cancel them here. Ones already handed to
-- Resend are flagged for the cancel worker (status stays 'scheduled' until Resend says
-- cancelled or too late); their Resend ids are returned.
CREATE OR REPLACE FUNCTION crm.stop_invoice_reminders(p_invoice_id bigint, p_reason text)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
BEGIN
    UPDATE crm.reminders
       SET status = 'cancelled', cancel_reason = p_reason, cancelled_at = now()
     WHERE invoice_id = p_invoice_id AND status IN ('pending', 'queued');
    WITH flagged AS (
        UPDATE crm.reminders
           SET resend_cancel = 'requested', cancel_reason = p_reason, next_attempt_at = now()
         WHERE invoice_id = p_invoice_id AND status = 'scheduled' AND resend_cancel IS NULL
        RETURNING resend_id
    )
    SELECT coalesce(array_agg(resend_id ORDER BY resend_id), '{}') INTO v_ids FROM flagged;
    RETURN v_ids;
END;
$$;


-- A customer opted out of reminders: in the opt-out's transaction, their queued reminders
-- are cancelled (one whose request was already stored is flagged for the cancel worker by
-- the trigger below) and the ones Resend holds are flagged for the cancel worker, as
-- crm.stop_invoice_reminders does for a payment. Pending ones stay pending: the queueing
-- function cancels each as it comes due while the customer is opted out, so opting back in
-- before then brings them back. Returns how many reminders were stopped.
CREATE OR REPLACE FUNCTION crm.stop_customer_reminders(p_customer_id bigint, p_actor text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    WITH target AS (
        SELECT r.id, r.status
          FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id
         WHERE i.customer_id = p_customer_id
           AND (r.status = 'queued' OR (r.status = 'scheduled' AND r.resend_cancel IS NULL))
         ORDER BY r.id
           FOR UPDATE OF r
    ), cancelled AS (
        UPDATE crm.reminders r
           SET status = 'cancelled', cancel_reason = 'opted_out', cancelled_at = now()
          FROM target t WHERE r.id = t.id AND t.status = 'queued'
        RETURNING r.id, 'queued'::text AS from_status, 'cancelled'::text AS to_status
    ), flagged AS (
        UPDATE crm.reminders r
           SET resend_cancel = 'requested', cancel_reason = 'opted_out', next_attempt_at = now()
          FROM target t WHERE r.id = t.id AND t.status = 'scheduled'
        RETURNING r.id, 'scheduled'::text AS from_status, 'scheduled'::text AS to_status
    ), audit AS (
        SELECT crm.write_audit('reminder', id, from_status, to_status, 'user', p_actor,
                               jsonb_build_object('cancel_reason', 'opted_out',
                                                  'resend_cancel', CASE WHEN from_status = 'scheduled'
                                                                        THEN 'requested' END))
          FROM (SELECT * FROM cancelled UNION ALL SELECT * FROM flagged) s
    )
    SELECT count(*) INTO v_count FROM audit;
    RETURN v_count;
END;
$$;


CREATE OR REPLACE FUNCTION crm.queue_due_reminders_within(p_now timestamptz, p_window interval)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_queued integer;
    v_audited integer;  -- read so the audit rows are written (a CTE runs only when read)
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
    ), audit AS (
        SELECT crm.write_audit('reminder', id, old_status, 'cancelled', 'system', 'queue_due_reminders',
                               jsonb_build_object('cancel_reason', invoice_status))
          FROM done
    )
    SELECT count(*) INTO v_audited FROM audit;

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
    ), audit AS (
        SELECT crm.write_audit('reminder', id, 'pending', 'cancelled', 'system', 'queue_due_reminders',
                               '{"cancel_reason": "opted_out"}')
          FROM done
    )
    SELECT count(*) INTO v_audited FROM audit;

    WITH locked AS (
        SELECT r.id, r.invoice_id, r.sequence, r.send_at
          FROM crm.reminders r
          JOIN crm.invoices i ON i.id = r.invoice_id
          JOIN crm.customers c ON c.id = i.customer_id
         WHERE r.status = 'pending' AND r.send_at <= p_now + p_window
           AND i.status = 'open' AND i.processing_payment_intent_id IS NULL AND NOT c.reminders_opt_out
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
        SELECT crm.write_audit('reminder', id, 'pending', 'cancelled', 'system', 'queue_due_reminders',
                               '{"cancel_reason": "superseded"}'), false AS queued
          FROM superseded
        UNION ALL
        SELECT crm.write_audit('reminder', id, 'pending', 'queued', 'system', 'queue_due_reminders'), true
          FROM queued
    )
    SELECT count(*) FILTER (WHERE queued) INTO v_queued FROM audit;
    RETURN v_queued;
END;
$$;


-- The one home of the hand-off window: a reminder sits at Resend with scheduled_at for about
-- a day, so a late payment is stopped by Resend's cancel API.
CREATE OR REPLACE FUNCTION crm.reminder_handoff_window()
RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT interval '1 day';
$$;


-- How often the queueing function runs: pg_cron's schedule. The sidecar's fallback worker runs
-- at the same period (db/reminders.QUEUE_PERIOD_S; a test holds the two equal).
CREATE OR REPLACE FUNCTION crm.reminder_queue_schedule()
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '*/5 * * * *';
$$;


-- The entry point pg_cron and the sidecar call (same signature as the 0002 stub).
CREATE OR REPLACE FUNCTION crm.queue_due_reminders(p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql AS $$
    SELECT crm.queue_due_reminders_within(p_now, crm.reminder_handoff_window());
$$;


-- Registers the pg_cron job when pg_cron can be used in this database; says why not
-- otherwise. Safe to call any number of times (python -m crm migrate calls it each run,
-- so enabling pg_cron after the first deploy needs no new migration).
CREATE OR REPLACE FUNCTION crm.ensure_cron_jobs()
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    -- The job runs as the role that owns the schema (Supabase: the application's role, not a
    -- superuser), in this database, which is where pg_cron lives on Supabase (`postgres`).
    v_owner text := (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'crm');
    v_superuser boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron') THEN
            RETURN 'pg_cron is not installed on this server';
        END IF;
        IF NOT v_superuser THEN
            -- Only the platform may create it (on Supabase: Database -> Extensions).
            RETURN 'pg_cron is available but not enabled in this database: enable it, then run migrate again';
        END IF;
        IF current_setting('cron.database_name', true) IS DISTINCT FROM current_database() THEN
            RETURN format('pg_cron runs in database %s, not in %s (cron.database_name)',
                          coalesce(current_setting('cron.database_name', true), 'none'), current_database());
        END IF;
        CREATE EXTENSION pg_cron;
    END IF;
    IF to_regprocedure('cron.schedule_in_database(text,text,text,text,text,boolean)') IS NOT NULL THEN
        -- pg_cron lets only a superuser name the role; anyone else schedules as itself.
        PERFORM cron.schedule_in_database('crm-queue-due-reminders', crm.reminder_queue_schedule(),
                                          'SELECT crm.queue_due_reminders(now())', current_database(),
                                          CASE WHEN v_superuser THEN v_owner END);
    ELSE  -- pg_cron before 1.4: the job runs in cron.database_name as the role scheduling it
        PERFORM cron.schedule('crm-queue-due-reminders', crm.reminder_queue_schedule(),
                              'SELECT crm.queue_due_reminders(now())');
    END IF;
    RETURN 'scheduled';
END;
$$;


-- Why a reminder stopped, when nothing recorded a reason before: its invoice closed (paid,
-- void, uncollectible), a bank debit is on its way ('processing', derived), or staff did it.
CREATE OR REPLACE FUNCTION crm.reminder_cancel_reason(p_invoice_status text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_invoice_status IN ('paid', 'void', 'uncollectible') THEN p_invoice_status
                WHEN p_invoice_status = 'processing' THEN 'payment_processing'
                ELSE 'manual' END;
$$;


-- A reminder row locked for this transaction with its email record first: the lock order
-- everywhere is email_messages, then reminders, then invoices. All fields NULL when there is none.
CREATE OR REPLACE FUNCTION crm.lock_reminder(p_reminder_id bigint)
RETURNS crm.reminders
LANGUAGE plpgsql AS $$
DECLARE
    r crm.reminders%ROWTYPE;
BEGIN
    PERFORM 1 FROM crm.email_messages WHERE reminder_id = p_reminder_id FOR UPDATE;
    SELECT * INTO r FROM crm.reminders WHERE id = p_reminder_id FOR UPDATE;
    RETURN r;
END;
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
    r := crm.lock_reminder(p_reminder_id);
    IF r.id IS NULL OR r.claim_token IS DISTINCT FROM p_token THEN
        RETURN 'claim_lost';
    END IF;
    -- A bank debit on its way counts as not open here: the email is stopped and its slot kept.
    SELECT crm.invoice_processing_status(status, processing_payment_intent_id)
      INTO v_invoice_status FROM crm.invoices WHERE id = r.invoice_id;

    IF r.status = 'queued' AND v_invoice_status = 'open' THEN
        UPDATE crm.reminders
           SET status = 'scheduled', resend_id = p_resend_id, handed_off_at = p_now, claim_token = NULL,
               claimed_until = NULL, attempts = 0, last_error = NULL
         WHERE id = p_reminder_id;
        PERFORM crm.write_audit('reminder', p_reminder_id, 'queued', 'scheduled', 'system', 'reminder_dispatcher',
                                jsonb_build_object('resend_id', p_resend_id));
    ELSIF r.status IN ('queued', 'cancelled') THEN
        UPDATE crm.reminders
           SET status = 'cancelled', resend_id = p_resend_id, handed_off_at = p_now, claim_token = NULL,
               claimed_until = NULL, resend_cancel = 'requested', next_attempt_at = p_now, attempts = 0,
               cancel_reason = coalesce(cancel_reason, crm.reminder_cancel_reason(v_invoice_status)),
               cancelled_at = coalesce(cancelled_at, p_now)
         WHERE id = p_reminder_id;
        PERFORM crm.write_audit('reminder', p_reminder_id, r.status, 'cancelled', 'system', 'reminder_dispatcher',
                                jsonb_build_object('resend_id', p_resend_id, 'resend_cancel', 'requested'));
        IF r.status = 'queued' AND v_invoice_status = 'processing' THEN
            PERFORM crm.replace_reminder(p_reminder_id);
        END IF;
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
    r := crm.lock_reminder(p_reminder_id);
    IF r.id IS NULL OR r.resend_cancel IS DISTINCT FROM 'requested' THEN
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
               cancel_reason = coalesce(cancel_reason, crm.reminder_cancel_reason(v_invoice_status))
         WHERE id = p_reminder_id;
        UPDATE crm.email_messages SET status = 'cancelled'
         WHERE reminder_id = p_reminder_id AND status IN ('pending', 'scheduled');
        PERFORM crm.write_audit('reminder', p_reminder_id, r.status, 'cancelled', 'system', 'reminder_cancel',
                                jsonb_build_object('resend_id', r.resend_id, 'resend_cancel', 'done'));
        RETURN 'done';
    ELSIF p_outcome = 'too_late' THEN
        UPDATE crm.reminders
           SET status = 'sent', resend_cancel = 'too_late', next_attempt_at = NULL, last_error = NULL,
               sent_at = coalesce(sent_at, p_now)
         WHERE id = p_reminder_id;
        -- It went out after all: a replacement waiting for the same slot would be a second one.
        UPDATE crm.reminders
           SET status = 'cancelled', cancel_reason = 'superseded', cancelled_at = p_now
         WHERE invoice_id = r.invoice_id AND offset_days = r.offset_days AND revision > r.revision
           AND status IN ('pending', 'queued');
        UPDATE crm.email_messages SET status = 'sent', sent_at = coalesce(sent_at, p_now)
         WHERE reminder_id = p_reminder_id AND status IN ('pending', 'scheduled', 'cancelled');
        PERFORM crm.write_audit('reminder', p_reminder_id, r.status, 'sent', 'system', 'reminder_cancel',
                                jsonb_build_object('resend_id', r.resend_id, 'resend_cancel', 'too_late',
                                                   'note', 'Resend had already sent it when the cancel arrived'));
        RETURN 'too_late';
    END IF;
    RAISE EXCEPTION 'unknown cancel outcome %', p_outcome USING ERRCODE = '22023';
END;
$$;


-- Only 'queued' rows can have a stored request (the dispatcher claims queued rows only), so
-- the lookup runs for nothing else; the sweep's bulk pending -> cancelled updates skip it.
CREATE OR REPLACE FUNCTION crm.flag_unrecorded_reminder_cancel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM crm.email_messages
                WHERE reminder_id = NEW.id AND request IS NOT NULL AND resend_id IS NULL) THEN
        NEW.resend_cancel := 'requested';
        NEW.next_attempt_at := coalesce(NEW.next_attempt_at, NEW.cancelled_at, now());
        NEW.attempts := 0;
    END IF;
    RETURN NEW;
END;
$$;


CREATE OR REPLACE TRIGGER reminders_flag_unrecorded_cancel
    BEFORE UPDATE OF status ON crm.reminders
    FOR EACH ROW
    WHEN (OLD.status = 'queued' AND NEW.status = 'cancelled' AND NEW.resend_id IS NULL
          AND NEW.resend_cancel IS NULL)
    EXECUTE FUNCTION crm.flag_unrecorded_reminder_cancel();


-- What the cancel worker found for a flagged reminder without a Resend id:
--   'replayed'      p_resend_id is the email Resend holds for the stored request: recorded
--                   here, and the worker cancels it next (crm.record_reminder_cancel);
--   'possibly_sent' not replayed (scheduled_at too close or past): it may have gone out;
--   'not_sent'      no request was stored, so nothing can have reached Resend.
-- Returns the Resend id to cancel ('replayed'; the one already recorded if the dispatcher
-- got there first), the outcome recorded otherwise, or 'not_requested'.
CREATE OR REPLACE FUNCTION crm.record_unrecorded_reminder(p_reminder_id bigint, p_outcome text,
                                                          p_now timestamptz, p_resend_id text DEFAULT NULL,
                                                          p_note text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r crm.reminders%ROWTYPE;
BEGIN
    r := crm.lock_reminder(p_reminder_id);
    IF r.id IS NULL OR r.resend_cancel IS DISTINCT FROM 'requested' THEN
        RETURN 'not_requested';
    END IF;
    IF p_outcome = 'replayed' THEN
        IF p_resend_id IS NULL THEN
            RAISE EXCEPTION 'replayed needs the Resend id' USING ERRCODE = '22023';
        END IF;
        IF r.resend_id IS NOT NULL THEN
            RETURN r.resend_id;  -- the dispatcher recorded its hand-off meanwhile
        END IF;
        -- The claim is over: a dispatcher still holding it gets 'claim_lost' when it records.
        UPDATE crm.reminders
           SET resend_id = p_resend_id, handed_off_at = coalesce(handed_off_at, p_now), claim_token = NULL,
               claimed_until = NULL
         WHERE id = p_reminder_id;
        PERFORM crm.write_audit('reminder', p_reminder_id, r.status, r.status, 'system', 'reminder_cancel',
                                jsonb_build_object('resend_id', p_resend_id, 'resend_cancel', 'requested',
                                                   'note', 'hand-off was never recorded; replayed the stored request to learn the id'));
        -- After the reminder row, as in crm.record_reminder_handoff: adopting early webhook
        -- events may mark the reminder sent.
        UPDATE crm.email_messages
           SET resend_id = p_resend_id, status = CASE WHEN status = 'pending' THEN 'scheduled' ELSE status END,
               error = NULL
         WHERE reminder_id = p_reminder_id;
        RETURN p_resend_id;
    ELSIF p_outcome IN ('possibly_sent', 'not_sent') THEN
        IF r.resend_id IS NOT NULL THEN
            RETURN 'not_requested';  -- an id arrived meanwhile: the ordinary cancel handles it
        END IF;
        UPDATE crm.reminders
           SET resend_cancel = CASE WHEN p_outcome = 'possibly_sent' THEN 'possibly_sent' END,
               next_attempt_at = NULL, claim_token = NULL, claimed_until = NULL,
               last_error = CASE WHEN p_outcome = 'possibly_sent' THEN left(p_note, 500) ELSE last_error END
         WHERE id = p_reminder_id;
        UPDATE crm.email_messages SET error = left(p_note, 500)
         WHERE reminder_id = p_reminder_id AND p_outcome = 'possibly_sent';
        PERFORM crm.write_audit('reminder', p_reminder_id, r.status, r.status, 'system', 'reminder_cancel',
                                jsonb_build_object('resend_cancel', p_outcome, 'note', p_note));
        RETURN p_outcome;
    END IF;
    RAISE EXCEPTION 'unknown outcome %', p_outcome USING ERRCODE = '22023';
END;
$$;


-- A new pending row for a reminder's slot (same sequence, offset and time, next revision):
-- it is queued again when due and gets its own id, idempotency key and freshly built request.
CREATE OR REPLACE FUNCTION crm.replace_reminder(p_reminder_id bigint)
RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO crm.reminders (invoice_id, sequence, offset_days, send_at, revision)
    SELECT r.invoice_id, r.sequence, r.offset_days, r.send_at,
           (SELECT max(o.revision) + 1 FROM crm.reminders o
             WHERE o.invoice_id = r.invoice_id AND o.offset_days = r.offset_days)
      FROM crm.reminders r WHERE r.id = p_reminder_id
    RETURNING id;
$$;


-- Reminders whose request is already built (stored for the dispatcher, or handed to Resend)
-- carry the amount and the moment they were built for. After a partial payment
-- ('amount_changed') or when a bank debit starts ('payment_processing') each is cancelled,
-- at Resend too, and replaced by a pending row for the same slot. Pending rows, and queued
-- ones with no request yet, are left alone: their request is built when they are claimed,
-- and the queue and the dispatcher skip a processing invoice. Returns the Resend ids flagged.
CREATE OR REPLACE FUNCTION crm.requeue_invoice_reminders(p_invoice_id bigint, p_reason text)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_ids text[] := '{}';
BEGIN
    FOR r IN
        SELECT rm.id, rm.status, rm.resend_id
          FROM crm.reminders rm
         WHERE rm.invoice_id = p_invoice_id AND rm.resend_cancel IS NULL
           AND (rm.status = 'scheduled'
                OR (rm.status = 'queued' AND EXISTS (SELECT 1 FROM crm.email_messages m WHERE m.reminder_id = rm.id)))
         ORDER BY rm.id
           FOR UPDATE OF rm
    LOOP
        IF r.status = 'scheduled' THEN
            -- Stays 'scheduled' until Resend confirms, as in crm.stop_invoice_reminders.
            UPDATE crm.reminders SET resend_cancel = 'requested', cancel_reason = p_reason, next_attempt_at = now()
             WHERE id = r.id;
            v_ids := v_ids || r.resend_id;
        ELSE
            -- A stored request without a known Resend id: the flagging trigger hands it to the
            -- cancel worker, which replays it to learn the id.
            UPDATE crm.reminders
               SET status = 'cancelled', cancel_reason = p_reason, cancelled_at = now(), claim_token = NULL,
                   claimed_until = NULL
             WHERE id = r.id;
        END IF;
        PERFORM crm.write_audit('reminder', r.id, r.status,
                                CASE WHEN r.status = 'scheduled' THEN 'scheduled' ELSE 'cancelled' END, 'system',
                                'requeue_invoice_reminders',
                                jsonb_build_object('cancel_reason', p_reason, 'resend_cancel', 'requested',
                                                   'replaced_by', crm.replace_reminder(r.id)));
    END LOOP;
    RETURN v_ids;
END;
$$;


-- A partial payment changes the amount every already-built reminder asks for.
CREATE OR REPLACE FUNCTION crm.requeue_reminders_after_partial_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM crm.requeue_invoice_reminders(NEW.id, 'amount_changed');
    RETURN NULL;
END;
$$;


CREATE OR REPLACE TRIGGER invoices_requeue_reminders_after_partial_payment
    AFTER UPDATE OF amount_paid_cents ON crm.invoices
    FOR EACH ROW
    WHEN (NEW.amount_paid_cents > OLD.amount_paid_cents AND NEW.status = 'open'
          AND NEW.amount_paid_cents < NEW.amount_due_cents)
    EXECUTE FUNCTION crm.requeue_reminders_after_partial_payment();
