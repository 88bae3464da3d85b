-- Cancelling at Resend a reminder whose hand-off was never recorded (design invariant 3).
--
-- The gap: a dispatcher stores the reminder's exact request (email_messages.request), sends
-- it to Resend with scheduled_at and a fixed idempotency key, and dies before recording the
-- Resend id. If the invoice is paid (or voided, or marked uncollectible) before the claim's
-- lease runs out, the reminder is cancelled here while it is still 'queued', nobody knows
-- the Resend id, and the scheduled email would still go out.
--
-- The fix: a queued reminder that is cancelled while a stored request has no Resend id is
-- flagged for the cancel worker like any other (resend_cancel = 'requested'), without an id.
-- The worker replays the stored request under the same key: Resend answers with the first
-- email's id (replayed for 24 h), or, if the first request never reached Resend, creates
-- the scheduled email now; either way the worker records the id and cancels it at once.
-- It never replays a request whose scheduled_at is not safely in the future: that replay
-- could send the email right away. Such a reminder is recorded as 'possibly_sent'.
--
-- A trigger rather than a new crm.stop_invoice_reminders: three places cancel queued
-- reminders (the payment transaction, void from the dashboard in db/invoices.py, and the
-- sweep in crm.queue_due_reminders_within) and all three need this.

ALTER TABLE crm.reminders DROP CONSTRAINT reminders_resend_cancel_check;
ALTER TABLE crm.reminders ADD CONSTRAINT reminders_resend_cancel_check
    CHECK (resend_cancel IN ('requested', 'done', 'too_late', 'possibly_sent'));

-- Was: a cancel at Resend needs a Resend id. Now a cancelled reminder may be flagged before
-- its id is known (the worker finds it by replaying), or end as possibly sent without one.
ALTER TABLE crm.reminders DROP CONSTRAINT reminders_check1;
ALTER TABLE crm.reminders ADD CONSTRAINT reminders_resend_cancel_needs_id CHECK (
    resend_cancel IS NULL OR resend_id IS NOT NULL
    OR (status = 'cancelled' AND resend_cancel IN ('requested', 'possibly_sent')));

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

CREATE TRIGGER reminders_flag_unrecorded_cancel
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
    -- Lock order everywhere: email_messages, then reminders, then invoices.
    PERFORM 1 FROM crm.email_messages WHERE reminder_id = p_reminder_id FOR UPDATE;
    SELECT * INTO r FROM crm.reminders WHERE id = p_reminder_id FOR UPDATE;
    IF NOT FOUND OR r.resend_cancel IS DISTINCT FROM 'requested' THEN
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
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('reminder', p_reminder_id, r.status, r.status, 'system', 'reminder_cancel',
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
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('reminder', p_reminder_id, r.status, r.status, 'system', 'reminder_cancel',
                jsonb_build_object('resend_cancel', p_outcome, 'note', p_note));
        RETURN p_outcome;
    END IF;
    RAISE EXCEPTION 'unknown outcome %', p_outcome USING ERRCODE = '22023';
END;
$$;
