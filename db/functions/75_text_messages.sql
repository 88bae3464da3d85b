-- Texts through Twilio: the record made before each send (a double tap or a retry finds it),
-- what Twilio answered, its status callbacks (dedup on SID + status, forward only, audit row,
-- STOP turns the customer's texts off), all in one call each.

-- Later states win; a callback arriving out of order never moves a text backwards.
CREATE OR REPLACE FUNCTION crm.text_status_rank(p_status text)
RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_status
        WHEN 'sending' THEN 0 WHEN 'accepted' THEN 1 WHEN 'scheduled' THEN 1 WHEN 'queued' THEN 2
        WHEN 'sent' THEN 3 WHEN 'canceled' THEN 4 WHEN 'undelivered' THEN 4 WHEN 'failed' THEN 4
        WHEN 'delivered' THEN 5 WHEN 'read' THEN 6 ELSE 0 END;
$$;


-- The record of a text, made before Twilio is called. A text of the same kind to the same
-- number for the same invoice (or, for a test, the same number) made within p_window and not
-- refused is returned instead (existing = true): that is what makes a double tap one text.
-- The advisory lock serialises two taps that arrive together.
CREATE OR REPLACE FUNCTION crm.begin_text(p_kind text, p_invoice_id bigint, p_customer_id bigint, p_to text,
                                          p_body text, p_by text, p_window interval)
RETURNS TABLE (id bigint, status text, sid text, error_message text, existing boolean, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('crm.begin_text'), hashtext(p_kind || ':' || coalesce(p_invoice_id::text, p_to)));
    SELECT t.id INTO v_id FROM crm.text_messages t
     WHERE t.kind = p_kind AND t.invoice_id IS NOT DISTINCT FROM p_invoice_id AND t.to_number = p_to
       AND t.created_at > now() - p_window AND t.status NOT IN ('failed', 'undelivered', 'canceled')
     ORDER BY t.id DESC LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT t.id, t.status, t.sid, t.error_message, true, t.created_at FROM crm.text_messages t WHERE t.id = v_id;
        RETURN;
    END IF;
    INSERT INTO crm.text_messages (kind, invoice_id, customer_id, to_number, body, requested_by)
    VALUES (p_kind, p_invoice_id, p_customer_id, p_to, p_body, p_by)
    RETURNING text_messages.id INTO v_id;
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
    VALUES ('text', v_id, NULL, 'sending', 'user', p_by,
            jsonb_build_object('kind', p_kind, 'invoice_id', p_invoice_id, 'to', p_to));
    RETURN QUERY SELECT t.id, t.status, t.sid, t.error_message, false, t.created_at FROM crm.text_messages t WHERE t.id = v_id;
END;
$$;


-- What Twilio answered to the send: its SID and status, or its refusal (p_sid NULL, status
-- 'failed', Twilio's error code and message). A refusal with 21610 (the customer replied
-- STOP) turns the customer's texts off. Returns the text's status afterwards.
CREATE OR REPLACE FUNCTION crm.record_text_answer(p_id bigint, p_sid text, p_status text, p_error_code integer,
                                                  p_error_message text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t crm.text_messages%ROWTYPE;
    v_new text;
BEGIN
    SELECT * INTO t FROM crm.text_messages WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no text %', p_id USING ERRCODE = 'P0002';
    END IF;
    v_new := CASE WHEN crm.text_status_rank(p_status) > crm.text_status_rank(t.status) THEN p_status ELSE t.status END;
    UPDATE crm.text_messages
       SET sid = coalesce(sid, p_sid), status = v_new, error_code = coalesce(p_error_code, error_code),
           error_message = coalesce(p_error_message, error_message), updated_at = now()
     WHERE id = p_id;
    IF v_new <> t.status THEN
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('text', p_id, t.status, v_new, 'system', 'twilio_api',
                jsonb_strip_nulls(jsonb_build_object('sid', p_sid, 'error_code', p_error_code)));
    END IF;
    IF p_error_code = 21610 AND t.customer_id IS NOT NULL THEN
        PERFORM crm.set_texts_off(t.customer_id, 'replied STOP (Twilio error 21610)', 'twilio_api');
    END IF;
    RETURN v_new;
END;
$$;


-- The customer replied STOP: no more texts to them until they text START (email unaffected;
-- their reminders go by email from now on). Text reminders waiting at Twilio are stopped there.
CREATE OR REPLACE FUNCTION crm.set_texts_off(p_customer_id bigint, p_reason text, p_actor text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE crm.customers SET texts_off = true, texts_off_at = now(), texts_off_reason = p_reason, updated_at = now()
     WHERE id = p_customer_id AND NOT texts_off;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE crm.text_messages SET twilio_cancel = 'requested', cancel_reason = 'texts_off', updated_at = now()
     WHERE customer_id = p_customer_id AND kind = 'reminder' AND twilio_cancel IS NULL
       AND status IN ('sending', 'scheduled', 'accepted');
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
    VALUES ('customer', p_customer_id, 'texts_on', 'texts_off', 'system', p_actor,
            jsonb_build_object('reason', p_reason));
    RETURN true;
END;
$$;


-- One Twilio status callback, verified by the sidecar: dedup on (SID, status), move the text
-- forward only, audit row, and 21610 turns the customer's texts off. 'applied', 'duplicate'
-- or 'unmatched' (a SID we do not know: kept, acknowledged).
CREATE OR REPLACE FUNCTION crm.apply_twilio_callback(p_sid text, p_status text, p_error_code integer,
                                                     p_detail text, p_payload jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t crm.text_messages%ROWTYPE;
    v_event bigint;
    v_new text;
BEGIN
    SELECT * INTO t FROM crm.text_messages WHERE sid = p_sid FOR UPDATE;
    INSERT INTO crm.text_message_events (text_message_id, sid, status, error_code, detail, payload)
    VALUES (t.id, p_sid, p_status, p_error_code, p_detail, p_payload)
    ON CONFLICT (sid, status) DO NOTHING
    RETURNING id INTO v_event;
    IF v_event IS NULL THEN
        RETURN 'duplicate';
    END IF;
    IF t.id IS NULL THEN
        RETURN 'unmatched';
    END IF;
    v_new := CASE WHEN crm.text_status_rank(p_status) > crm.text_status_rank(t.status) THEN p_status ELSE t.status END;
    UPDATE crm.text_messages
       SET status = v_new, updated_at = now(),
           error_code = CASE WHEN p_error_code IS NOT NULL THEN p_error_code ELSE error_code END,
           error_message = CASE WHEN p_error_code IS NOT NULL THEN p_detail ELSE error_message END,
           sent_at = CASE WHEN p_status IN ('sent', 'delivered', 'undelivered', 'read') THEN coalesce(sent_at, now())
                          ELSE sent_at END,
           delivered_at = CASE WHEN p_status = 'delivered' THEN coalesce(delivered_at, now()) ELSE delivered_at END
     WHERE id = t.id;
    IF v_new <> t.status THEN
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('text', t.id, t.status, v_new, 'twilio_event', p_sid,
                jsonb_strip_nulls(jsonb_build_object('error_code', p_error_code, 'detail', p_detail)));
    END IF;
    IF p_error_code = 21610 AND t.customer_id IS NOT NULL THEN
        PERFORM crm.set_texts_off(t.customer_id, 'replied STOP (Twilio error 21610)', p_sid);
    END IF;
    RETURN 'applied';
END;
$$;


-- Text reminders of an invoice that must not go (paid, void, uncollectible, a bank payment on its
-- way, an amount changed, opted out): flagged for the cancel worker, which stops each at Twilio
-- with Status=canceled. Called from the same functions that stop the email reminders
-- (db/functions/40_reminders.sql), in their transaction. Returns how many were flagged.
CREATE OR REPLACE FUNCTION crm.flag_invoice_texts(p_invoice_id bigint, p_reason text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE crm.text_messages SET twilio_cancel = 'requested', cancel_reason = p_reason, updated_at = now()
     WHERE invoice_id = p_invoice_id AND kind = 'reminder' AND twilio_cancel IS NULL
       AND status IN ('sending', 'scheduled', 'accepted');
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;


-- The record of a text reminder, made before Twilio is called; NULL when the slot already has
-- a live one (another dispatcher, or an earlier pass).
CREATE OR REPLACE FUNCTION crm.begin_text_reminder(p_reminder_id bigint, p_invoice_id bigint, p_customer_id bigint,
                                                   p_to text, p_body text, p_send_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO crm.text_messages (kind, reminder_id, invoice_id, customer_id, to_number, body, send_at, requested_by)
    VALUES ('reminder', p_reminder_id, p_invoice_id, p_customer_id, p_to, p_body, p_send_at, 'text_reminders')
    ON CONFLICT (reminder_id) WHERE status <> 'canceled' DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NOT NULL THEN
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
        VALUES ('text', v_id, NULL, 'sending', 'system', 'text_reminders',
                jsonb_build_object('kind', 'reminder', 'reminder_id', p_reminder_id, 'send_at', p_send_at));
    END IF;
    RETURN v_id;
END;
$$;


-- What Twilio said to a cancel: 'done' (canceled there, or never reached it), 'too_late' (it
-- had gone out), or 'failed' (retry later; the flag stays).
CREATE OR REPLACE FUNCTION crm.record_text_cancel(p_id bigint, p_outcome text, p_error text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    t crm.text_messages%ROWTYPE;
BEGIN
    SELECT * INTO t FROM crm.text_messages WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR t.twilio_cancel IS DISTINCT FROM 'requested' THEN
        RETURN 'not_requested';
    END IF;
    IF p_outcome = 'failed' THEN
        UPDATE crm.text_messages SET error_message = left(p_error, 500), updated_at = now() WHERE id = p_id;
        RETURN 'failed';
    END IF;
    UPDATE crm.text_messages
       SET twilio_cancel = p_outcome,
           status = CASE WHEN p_outcome = 'done' THEN 'canceled' ELSE status END, updated_at = now()
     WHERE id = p_id;
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, detail)
    VALUES ('text', p_id, t.status, CASE WHEN p_outcome = 'done' THEN 'canceled' ELSE t.status END, 'system',
            'text_reminder_cancel', jsonb_build_object('twilio_cancel', p_outcome, 'reason', t.cancel_reason));
    RETURN p_outcome;
END;
$$;
