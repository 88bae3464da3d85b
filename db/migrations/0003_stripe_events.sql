-- Applying a verified Stripe event: one function call = one transaction that records the
-- event in the dedup ledger, applies the change, writes the audit rows, completes the job,
-- and stops the invoice's reminders. The sidecar calls crm.apply_stripe_event once per
-- delivery; the reconciler calls it with p_source = 'reconcile'.
--
-- Locking: the ledger insert decides duplicates (concurrent deliveries of one event wait
-- on its primary key, then see the row). Events for one invoice serialise on the invoice
-- row (FOR UPDATE); job completion then locks the job row, always after the invoice, so
-- two invoices of one job paid at once cannot both miss each other.

-- Invoice status only moves forward, following Stripe's own machine: an uncollectible
-- invoice can still be paid or voided; paid and void are final.
CREATE OR REPLACE FUNCTION crm.invoice_status_may_move(p_from text, p_to text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_from IS NULL OR p_to IS NULL OR p_from = p_to THEN false
        WHEN p_from IN ('draft', 'sending') THEN p_to IN ('open', 'paid', 'void', 'uncollectible')
        WHEN p_from = 'open' THEN p_to IN ('paid', 'void', 'uncollectible')
        WHEN p_from = 'uncollectible' THEN p_to IN ('paid', 'void')
        ELSE false
    END;
$$;

-- A Stripe refund's status moves from pending/requires_action to a final one, never back.
CREATE OR REPLACE FUNCTION crm.refund_status_may_move(p_from text, p_to text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_from IS NULL OR p_to IS NULL OR p_from = p_to THEN false
        WHEN p_from IN ('pending', 'requires_action') THEN p_to IN ('pending', 'requires_action', 'succeeded',
                                                                    'failed', 'canceled')
        ELSE false
    END;
$$;

-- A JSON number as bigint, NULL for anything else (absent, null, text, fractions).
CREATE OR REPLACE FUNCTION crm.jsonb_cents(p jsonb)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p) = 'number' AND (p #>> '{}') ~ '^-?\d{1,18}$'
                THEN (p #>> '{}')::bigint END;
$$;

CREATE OR REPLACE FUNCTION crm.jsonb_epoch(p jsonb)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_timestamp(crm.jsonb_cents(p));
$$;

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

-- Completes the job when every non-void invoice on it is paid and one at least is.
-- Drafts count as unpaid, so a paid deposit alone does not complete a job with a final draft.
CREATE OR REPLACE FUNCTION crm.complete_job_if_paid(p_job_id bigint, p_event_id text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM crm.jobs WHERE id = p_job_id FOR UPDATE;
    IF v_status IS NULL OR v_status IN ('completed', 'cancelled') THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM crm.invoices WHERE job_id = p_job_id AND status NOT IN ('paid', 'void'))
       OR NOT EXISTS (SELECT 1 FROM crm.invoices WHERE job_id = p_job_id AND status = 'paid') THEN
        RETURN false;
    END IF;
    UPDATE crm.jobs SET status = 'completed', completed_at = now(), completed_by_event_id = p_event_id
     WHERE id = p_job_id;
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id, detail)
    VALUES ('job', p_job_id, v_status, 'completed', 'stripe_event', p_event_id, p_event_id,
            jsonb_build_object('reason', 'every non-void invoice is paid'));
    RETURN true;
END;
$$;

-- Brings recorded payments up to the amount Stripe says is paid. A rise with no
-- InvoicePayment seen yet is recorded under the event id; the InvoicePayment event
-- later takes its place (crm.record_invoice_payment), so the sum never double counts.
CREATE OR REPLACE FUNCTION crm.record_amount_paid(p_invoice_id bigint, p_amount_paid bigint, p_event_id text,
                                                  p_mode text, p_currency text, p_paid_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_sum bigint;
BEGIN
    IF p_amount_paid IS NULL OR p_amount_paid <= 0 THEN
        RETURN 0;
    END IF;
    SELECT coalesce(sum(amount_cents), 0) INTO v_sum FROM crm.payments WHERE invoice_id = p_invoice_id;
    IF p_amount_paid > v_sum THEN
        INSERT INTO crm.payments (invoice_id, mode, stripe_payment_id, stripe_event_id, amount_cents, currency, paid_at)
        VALUES (p_invoice_id, p_mode, p_event_id, p_event_id, p_amount_paid - v_sum, p_currency, p_paid_at);
    END IF;
    UPDATE crm.invoices SET amount_paid_cents = greatest(amount_paid_cents, p_amount_paid)
     WHERE id = p_invoice_id AND amount_paid_cents < p_amount_paid;
    RETURN greatest(p_amount_paid - v_sum, 0);
END;
$$;

CREATE OR REPLACE FUNCTION crm.write_invoice_audit(p_invoice_id bigint, p_from text, p_to text, p_event_id text,
                                                   p_type text, p_detail jsonb DEFAULT '{}')
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id, detail)
    VALUES ('invoice', p_invoice_id, p_from, p_to, 'stripe_event', p_event_id, p_event_id,
            jsonb_build_object('event_type', p_type) || p_detail);
$$;

-- The CRM invoice a Stripe invoice id names, else the one its metadata names (the Send
-- workflow sets metadata.crm_invoice_id) provided that invoice is not linked to another
-- Stripe invoice.
CREATE OR REPLACE FUNCTION crm.find_invoice_for_stripe(p_stripe_invoice_id text, p_metadata jsonb)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id bigint;
    v_meta text := p_metadata ->> 'crm_invoice_id';
BEGIN
    SELECT id INTO v_id FROM crm.invoices WHERE stripe_invoice_id = p_stripe_invoice_id;
    IF v_id IS NULL AND v_meta ~ '^\d{1,18}$' THEN
        SELECT id INTO v_id FROM crm.invoices
         WHERE id = v_meta::bigint AND (stripe_invoice_id IS NULL OR stripe_invoice_id = p_stripe_invoice_id);
    END IF;
    RETURN v_id;
END;
$$;

-- invoice.* events: the payload is a snapshot of the invoice.
CREATE OR REPLACE FUNCTION crm.apply_stripe_invoice_event(p_event_id text, p_type text, p_obj jsonb, p_mode text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_inv crm.invoices;
    v_id bigint := crm.find_invoice_for_stripe(p_obj ->> 'id', p_obj -> 'metadata');
    v_target text;
    v_to text;
    v_changes text[] := '{}';
    v_recorded bigint;
    v_resend text[] := '{}';
    v_job_completed boolean := false;
    v_error text;
BEGIN
    IF v_id IS NULL THEN
        RETURN jsonb_build_object('outcome', 'unmatched', 'detail', 'no CRM invoice for ' || coalesce(p_obj ->> 'id', '?'));
    END IF;
    SELECT * INTO v_inv FROM crm.invoices WHERE id = v_id FOR UPDATE;
    IF v_inv.mode IS DISTINCT FROM p_mode THEN
        RETURN jsonb_build_object('outcome', 'rejected', 'invoice_id', v_id,
                                  'detail', format('event is %s mode, invoice was sent in %s mode', p_mode,
                                                   coalesce(v_inv.mode, 'no')));
    END IF;

    -- Late events still fill what is missing; nothing already set is overwritten.
    UPDATE crm.invoices
       SET stripe_invoice_id = coalesce(stripe_invoice_id, p_obj ->> 'id'),
           hosted_invoice_url = coalesce(hosted_invoice_url, p_obj ->> 'hosted_invoice_url'),
           invoice_pdf_url = coalesce(invoice_pdf_url, p_obj ->> 'invoice_pdf'),
           stripe_invoice_number = coalesce(stripe_invoice_number, p_obj ->> 'number')
     WHERE id = v_id
       AND ((stripe_invoice_id IS NULL AND p_obj ->> 'id' IS NOT NULL)
            OR (hosted_invoice_url IS NULL AND p_obj ->> 'hosted_invoice_url' IS NOT NULL)
            OR (invoice_pdf_url IS NULL AND p_obj ->> 'invoice_pdf' IS NOT NULL)
            OR (stripe_invoice_number IS NULL AND p_obj ->> 'number' IS NOT NULL));
    IF FOUND THEN
        v_changes := v_changes || 'details'::text;
    END IF;

    v_target := CASE p_obj ->> 'status'
        WHEN 'open' THEN 'open' WHEN 'paid' THEN 'paid' WHEN 'void' THEN 'void'
        WHEN 'uncollectible' THEN 'uncollectible' END;
    IF v_target IS NULL THEN
        v_target := CASE p_type WHEN 'invoice.voided' THEN 'void'
                                WHEN 'invoice.marked_uncollectible' THEN 'uncollectible' END;
    END IF;
    v_to := CASE WHEN crm.invoice_status_may_move(v_inv.status, v_target) THEN v_target ELSE v_inv.status END;

    -- Money first: a partial payment is recorded whatever the status does.
    IF v_inv.status <> 'void' THEN
        v_recorded := crm.record_amount_paid(
            v_id, crm.jsonb_cents(p_obj -> 'amount_paid'), p_event_id, p_mode,
            coalesce(p_obj ->> 'currency', v_inv.currency),
            coalesce(crm.jsonb_epoch(p_obj #> '{status_transitions,paid_at}'), now()));
        IF v_recorded > 0 THEN
            v_changes := v_changes || 'payment'::text;
            IF v_to <> 'paid' THEN
                PERFORM crm.write_invoice_audit(v_id, v_inv.status, v_to, p_event_id, p_type,
                    jsonb_build_object('partial_payment_cents', v_recorded,
                                       'amount_paid_cents', crm.jsonb_cents(p_obj -> 'amount_paid')));
            END IF;
        END IF;
    END IF;

    IF p_type = 'invoice.payment_failed' AND v_to IN ('draft', 'sending', 'open', 'uncollectible') THEN
        v_error := left(coalesce(p_obj #>> '{last_payment_error,message}', 'A payment attempt failed')
                        || coalesce(format(' (attempt %s)', p_obj ->> 'attempt_count'), ''), 500);
        UPDATE crm.invoices
           SET last_payment_error = v_error, attention = 'payment_failed', attention_detail = v_error
         WHERE id = v_id;
        PERFORM crm.write_invoice_audit(v_id, v_inv.status, v_to, p_event_id, p_type,
                                        jsonb_build_object('payment_error', v_error));
        v_changes := v_changes || 'payment_failed'::text;
    END IF;

    IF v_to <> v_inv.status THEN
        UPDATE crm.invoices
           SET status = v_to,
               paid_at = CASE WHEN v_to = 'paid'
                              THEN coalesce(crm.jsonb_epoch(p_obj #> '{status_transitions,paid_at}'), now())
                              ELSE paid_at END,
               voided_at = CASE WHEN v_to = 'void'
                                THEN coalesce(crm.jsonb_epoch(p_obj #> '{status_transitions,voided_at}'), now())
                                ELSE voided_at END,
               attention = CASE WHEN v_to IN ('paid', 'void') AND attention = 'payment_failed' THEN NULL
                                ELSE attention END,
               attention_detail = CASE WHEN v_to IN ('paid', 'void') AND attention = 'payment_failed' THEN NULL
                                       ELSE attention_detail END
         WHERE id = v_id;
        PERFORM crm.write_invoice_audit(v_id, v_inv.status, v_to, p_event_id, p_type,
                                        jsonb_build_object('amount_paid_cents', crm.jsonb_cents(p_obj -> 'amount_paid')));
        v_changes := v_changes || 'status'::text;
        IF v_to IN ('paid', 'void', 'uncollectible') THEN
            v_resend := crm.stop_invoice_reminders(v_id, v_to);
        END IF;
        IF v_to IN ('paid', 'void') THEN
            v_job_completed := crm.complete_job_if_paid(v_inv.job_id, p_event_id);
        END IF;
    END IF;

    RETURN jsonb_build_object(
        'outcome', CASE WHEN cardinality(v_changes) > 0 THEN 'applied' ELSE 'ignored' END,
        'invoice_id', v_id, 'job_id', v_inv.job_id, 'from_status', v_inv.status, 'to_status', v_to,
        'job_completed', v_job_completed, 'resend_ids_to_cancel', to_jsonb(v_resend),
        'detail', CASE WHEN cardinality(v_changes) > 0 THEN array_to_string(v_changes, ', ')
                       ELSE format('nothing to change (invoice is %s, event says %s)', v_inv.status,
                                   coalesce(p_obj ->> 'status', '?')) END);
END;
$$;

-- invoice_payment.paid: one payment with its ids; replaces amounts recorded under event ids.
CREATE OR REPLACE FUNCTION crm.apply_stripe_invoice_payment(p_event_id text, p_obj jsonb, p_mode text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_inv crm.invoices;
    v_stripe_invoice text := coalesce(p_obj #>> '{invoice,id}', p_obj ->> 'invoice');
    v_id bigint := crm.find_invoice_for_stripe(v_stripe_invoice, p_obj #> '{invoice,metadata}');
    v_amount bigint := coalesce(crm.jsonb_cents(p_obj -> 'amount_paid'), 0);
    v_payment_id bigint;
    v_left bigint;
    v_placeholder record;
BEGIN
    IF v_id IS NULL THEN
        RETURN jsonb_build_object('outcome', 'unmatched', 'detail', 'no CRM invoice for ' || coalesce(v_stripe_invoice, '?'));
    END IF;
    SELECT * INTO v_inv FROM crm.invoices WHERE id = v_id FOR UPDATE;
    IF v_inv.mode IS DISTINCT FROM p_mode THEN
        RETURN jsonb_build_object('outcome', 'rejected', 'invoice_id', v_id,
                                  'detail', format('event is %s mode, invoice was sent in %s mode', p_mode,
                                                   coalesce(v_inv.mode, 'no')));
    END IF;
    IF p_obj ->> 'status' IS DISTINCT FROM 'paid' OR v_amount <= 0 THEN
        RETURN jsonb_build_object('outcome', 'ignored', 'invoice_id', v_id, 'detail', 'invoice payment not paid');
    END IF;
    INSERT INTO crm.payments (invoice_id, mode, stripe_payment_id, stripe_payment_intent_id, stripe_charge_id,
                              stripe_event_id, amount_cents, currency, paid_at)
    VALUES (v_id, p_mode, p_obj ->> 'id', p_obj #>> '{payment,payment_intent}', p_obj #>> '{payment,charge}',
            p_event_id, v_amount, coalesce(p_obj ->> 'currency', v_inv.currency),
            coalesce(crm.jsonb_epoch(p_obj #> '{status_transitions,paid_at}'), now()))
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_payment_id;
    IF v_payment_id IS NULL THEN
        RETURN jsonb_build_object('outcome', 'ignored', 'invoice_id', v_id, 'detail', 'payment already recorded');
    END IF;
    v_left := v_amount;
    FOR v_placeholder IN
        SELECT id, amount_cents FROM crm.payments
         WHERE invoice_id = v_id AND stripe_payment_id LIKE 'evt\_%' ORDER BY id FOR UPDATE
    LOOP
        EXIT WHEN v_left = 0;
        IF v_placeholder.amount_cents <= v_left THEN
            DELETE FROM crm.payments WHERE id = v_placeholder.id;
            v_left := v_left - v_placeholder.amount_cents;
        ELSE
            UPDATE crm.payments SET amount_cents = amount_cents - v_left WHERE id = v_placeholder.id;
            v_left := 0;
        END IF;
    END LOOP;
    UPDATE crm.invoices
       SET amount_paid_cents = (SELECT sum(amount_cents) FROM crm.payments WHERE invoice_id = v_id)
     WHERE id = v_id AND amount_paid_cents < (SELECT sum(amount_cents) FROM crm.payments WHERE invoice_id = v_id);
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id, detail)
    VALUES ('payment', v_payment_id, NULL, 'paid', 'stripe_event', p_event_id, p_event_id,
            jsonb_build_object('invoice_id', v_id, 'amount_cents', v_amount));
    RETURN jsonb_build_object('outcome', 'applied', 'invoice_id', v_id, 'job_id', v_inv.job_id,
                              'from_status', v_inv.status, 'to_status', v_inv.status, 'detail', 'payment recorded');
END;
$$;

-- Recomputes an invoice's refunded total from its refund rows; a charge.refunded payload
-- may know more for its own charge (its refunds list is not always included).
CREATE OR REPLACE FUNCTION crm.refresh_amount_refunded(p_invoice_id bigint, p_payment_id bigint DEFAULT NULL,
                                                       p_charge_refunded bigint DEFAULT NULL)
RETURNS void
LANGUAGE sql AS $$
    UPDATE crm.invoices i
       SET amount_refunded_cents = least(i.amount_paid_cents, greatest(
               coalesce(r.total, 0),
               coalesce(p_charge_refunded + r.others, 0)))
      FROM (SELECT sum(amount_cents) AS total,
                   coalesce(sum(amount_cents) FILTER (WHERE payment_id IS DISTINCT FROM p_payment_id), 0) AS others
              FROM crm.refunds
             WHERE invoice_id = p_invoice_id AND status IN ('pending', 'requires_action', 'succeeded')) r
     WHERE i.id = p_invoice_id;
$$;

-- Upserts one Stripe refund object against a payment; returns true when something changed.
CREATE OR REPLACE FUNCTION crm.upsert_refund(p_refund jsonb, p_payment crm.payments, p_event_id text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_old crm.refunds;
    v_new_id bigint;
    v_status text := p_refund ->> 'status';
    v_amount bigint := crm.jsonb_cents(p_refund -> 'amount');
BEGIN
    IF v_status NOT IN ('pending', 'requires_action', 'succeeded', 'failed', 'canceled')
       OR v_amount IS NULL OR v_amount <= 0 OR (p_refund ->> 'id') !~ '^(re|pyr)_' THEN
        RETURN false;
    END IF;
    SELECT * INTO v_old FROM crm.refunds WHERE stripe_refund_id = p_refund ->> 'id' FOR UPDATE;
    IF v_old.id IS NULL THEN
        INSERT INTO crm.refunds (invoice_id, payment_id, mode, stripe_refund_id, stripe_charge_id, stripe_event_id,
                                 amount_cents, currency, status, reason)
        VALUES (p_payment.invoice_id, p_payment.id, p_payment.mode, p_refund ->> 'id', p_refund ->> 'charge',
                p_event_id, v_amount, coalesce(p_refund ->> 'currency', p_payment.currency), v_status,
                p_refund ->> 'reason')
        ON CONFLICT (stripe_refund_id) DO NOTHING
        RETURNING id INTO v_new_id;
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id, detail)
        VALUES ('refund', v_new_id, NULL, v_status, 'stripe_event', p_event_id, p_event_id,
                jsonb_build_object('invoice_id', p_payment.invoice_id, 'amount_cents', v_amount));
        RETURN true;
    END IF;
    IF NOT crm.refund_status_may_move(v_old.status, v_status) THEN
        RETURN false;
    END IF;
    UPDATE crm.refunds SET status = v_status, amount_cents = v_amount, stripe_event_id = p_event_id
     WHERE id = v_old.id;
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id, detail)
    VALUES ('refund', v_old.id, v_old.status, v_status, 'stripe_event', p_event_id, p_event_id,
            jsonb_build_object('invoice_id', p_payment.invoice_id, 'amount_cents', v_amount));
    RETURN true;
END;
$$;

-- refund.* (object: refund) and charge.refunded (object: charge): linked to the invoice
-- through the payment intent or charge recorded on crm.payments.
CREATE OR REPLACE FUNCTION crm.apply_stripe_refund_event(p_event_id text, p_type text, p_obj jsonb, p_mode text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_is_charge boolean := p_type LIKE 'charge.%';
    v_charge text := CASE WHEN v_is_charge THEN p_obj ->> 'id' ELSE p_obj ->> 'charge' END;
    v_intent text := p_obj ->> 'payment_intent';
    v_payment crm.payments;
    v_inv crm.invoices;
    v_changed boolean := false;
    v_refund jsonb;
BEGIN
    SELECT * INTO v_payment FROM crm.payments
     WHERE (v_intent IS NOT NULL AND stripe_payment_intent_id = v_intent)
        OR (v_charge IS NOT NULL AND stripe_charge_id = v_charge)
     ORDER BY id LIMIT 1;
    IF v_payment.id IS NULL THEN
        RETURN jsonb_build_object('outcome', 'unmatched',
                                  'detail', 'no CRM payment for ' || coalesce(v_intent, v_charge, '?'));
    END IF;
    SELECT * INTO v_inv FROM crm.invoices WHERE id = v_payment.invoice_id FOR UPDATE;
    IF v_payment.mode <> p_mode THEN
        RETURN jsonb_build_object('outcome', 'rejected', 'invoice_id', v_inv.id,
                                  'detail', format('event is %s mode, payment was made in %s mode', p_mode,
                                                   v_payment.mode));
    END IF;
    IF v_payment.stripe_charge_id IS NULL AND v_charge IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM crm.payments WHERE stripe_charge_id = v_charge) THEN
        UPDATE crm.payments SET stripe_charge_id = v_charge WHERE id = v_payment.id;
    END IF;
    IF v_is_charge THEN
        FOR v_refund IN SELECT * FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(p_obj #> '{refunds,data}') = 'array' THEN p_obj #> '{refunds,data}'
                     ELSE '[]'::jsonb END)
        LOOP
            v_changed := crm.upsert_refund(v_refund, v_payment, p_event_id) OR v_changed;
        END LOOP;
    ELSE
        v_changed := crm.upsert_refund(p_obj, v_payment, p_event_id);
    END IF;
    PERFORM crm.refresh_amount_refunded(v_inv.id, v_payment.id,
                                        CASE WHEN v_is_charge THEN crm.jsonb_cents(p_obj -> 'amount_refunded') END);
    IF NOT v_changed AND (SELECT amount_refunded_cents FROM crm.invoices WHERE id = v_inv.id)
                         IS DISTINCT FROM v_inv.amount_refunded_cents THEN
        INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id, detail)
        VALUES ('invoice', v_inv.id, v_inv.status, v_inv.status, 'stripe_event', p_event_id, p_event_id,
                jsonb_build_object('event_type', p_type, 'amount_refunded_cents',
                                   (SELECT amount_refunded_cents FROM crm.invoices WHERE id = v_inv.id)));
        v_changed := true;
    END IF;
    RETURN jsonb_build_object(
        'outcome', CASE WHEN v_changed THEN 'applied' ELSE 'ignored' END,
        'invoice_id', v_inv.id, 'job_id', v_inv.job_id, 'from_status', v_inv.status, 'to_status', v_inv.status,
        'detail', CASE WHEN v_changed THEN 'refund recorded' ELSE 'refund already recorded' END);
END;
$$;

-- The one entry point: ledger insert (dedup), dispatch on type, ledger outcome.
-- Returns {outcome: applied|duplicate|ignored|unmatched|rejected, invoice_id, job_id,
-- from_status, to_status, job_completed, resend_ids_to_cancel, detail}.
CREATE OR REPLACE FUNCTION crm.apply_stripe_event(p_event jsonb, p_mode text, p_source text DEFAULT 'webhook')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := p_event ->> 'id';
    v_type text := p_event ->> 'type';
    v_obj jsonb := p_event #> '{data,object}';
    v_result jsonb;
    v_previous text;
BEGIN
    IF v_id IS NULL OR v_type IS NULL OR jsonb_typeof(v_obj) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'not a Stripe event (id, type and data.object are required)' USING ERRCODE = '22023';
    END IF;
    INSERT INTO crm.stripe_events (id, type, mode, api_version, object_id, outcome, source, stripe_created_at, payload)
    VALUES (v_id, v_type, p_mode, p_event ->> 'api_version', v_obj ->> 'id', 'ignored', p_source,
            crm.jsonb_epoch(p_event -> 'created'), p_event)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        UPDATE crm.stripe_events SET duplicate_deliveries = duplicate_deliveries + 1 WHERE id = v_id
        RETURNING outcome INTO v_previous;
        RETURN jsonb_build_object('outcome', 'duplicate', 'detail', 'already processed: ' || v_previous,
                                  'resend_ids_to_cancel', '[]'::jsonb, 'job_completed', false);
    END IF;

    v_result := CASE
        WHEN v_type IN ('invoice.paid', 'invoice.payment_succeeded', 'invoice.payment_failed', 'invoice.voided',
                        'invoice.marked_uncollectible', 'invoice.finalized', 'invoice.sent', 'invoice.updated')
            THEN crm.apply_stripe_invoice_event(v_id, v_type, v_obj, p_mode)
        WHEN v_type = 'invoice_payment.paid'
            THEN crm.apply_stripe_invoice_payment(v_id, v_obj, p_mode)
        WHEN v_type IN ('charge.refunded', 'refund.created', 'refund.updated', 'refund.failed')
            THEN crm.apply_stripe_refund_event(v_id, v_type, v_obj, p_mode)
        ELSE jsonb_build_object('outcome', 'ignored', 'detail', 'event type not handled')
    END;

    UPDATE crm.stripe_events
       SET outcome = v_result ->> 'outcome', invoice_id = (v_result ->> 'invoice_id')::bigint,
           detail = v_result ->> 'detail'
     WHERE id = v_id;
    RETURN jsonb_build_object('resend_ids_to_cancel', '[]'::jsonb, 'job_completed', false) || v_result;
END;
$$;
