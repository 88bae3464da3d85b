-- Resend webhooks: crm.apply_resend_event applies one Svix-signed event (dedup on svix-id,
-- email status, invoice flag, reminder sent), and events that arrive before their email's
-- Resend id is recorded are adopted when it is.

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
        PERFORM crm.write_audit('email', p_message_id, m.status, v_new, 'resend_event', p_svix_id,
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
                PERFORM crm.write_audit('invoice', m.invoice_id, v_invoice_status, v_invoice_status,
                                        'resend_event', p_svix_id,
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
            PERFORM crm.write_audit('reminder', r.id, r.status, 'sent', 'resend_event', p_svix_id,
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


CREATE OR REPLACE TRIGGER email_messages_adopt_events
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
