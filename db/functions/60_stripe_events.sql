-- Applying a verified Stripe event: one function call = one transaction that records the
-- event in the dedup ledger, applies the change, writes the audit rows, completes the job,
-- and stops the invoice's reminders. The sidecar calls crm.apply_stripe_event once per
-- delivery; the reconciler calls it with p_source = 'reconcile'.
--
-- Locking: the ledger insert decides duplicates (concurrent deliveries of one event wait
-- on its primary key, then see the row). Events for one invoice serialise on the invoice
-- row (FOR UPDATE); job completion then locks the job row, always after the invoice, so
-- two invoices of one job paid at once cannot both miss each other.

-- invoice.* events: the payload is a snapshot of the invoice.
CREATE OR REPLACE FUNCTION crm.apply_stripe_invoice_event(p_event_id text, p_type text, p_obj jsonb, p_mode text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_inv crm.invoices;
    v_lock record;
    v_id bigint := crm.find_invoice_for_stripe(p_obj ->> 'id', p_obj -> 'metadata');
    v_target text;
    v_to text;
    v_changes text[] := '{}';
    v_recorded bigint;
    v_amount_paid bigint;
    v_resend text[] := '{}';
    v_job_completed boolean := false;
    v_error text;
BEGIN
    v_lock := crm.lock_event_invoice(v_id, p_mode, 'no CRM invoice for ' || coalesce(p_obj ->> 'id', '?'));
    IF v_lock.refusal IS NOT NULL THEN
        RETURN v_lock.refusal;
    END IF;
    v_inv := v_lock.inv;

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

    -- Money first: a partial payment is recorded whatever the status does. The invoice's
    -- amount_paid_cents rises in the UPDATE below; it never moves back.
    IF v_inv.status <> 'void' THEN
        v_amount_paid := crm.jsonb_cents(p_obj -> 'amount_paid');
        v_recorded := crm.record_amount_paid(
            v_id, v_amount_paid, p_event_id, p_mode,
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
        -- The reason is on the payment intent (payment_intent.payment_failed), not here: keep
        -- one already recorded in the last hour, else ask the worker to look it up.
        SELECT crm.decline_text(code, decline_code, message) INTO v_error FROM crm.payment_failures
         WHERE invoice_id = v_id AND created_at > now() - interval '1 hour' ORDER BY failed_at DESC, id DESC LIMIT 1;
        v_error := left(coalesce(v_error, p_obj #>> '{last_payment_error,message}', 'A payment attempt failed')
                        || coalesce(format(' (attempt %s)', p_obj ->> 'attempt_count'), ''), 500);
        -- The invoice's payload carries no reason: keep one payment_intent.payment_failed gave.
        UPDATE crm.invoices
           SET last_payment_error = CASE WHEN p_obj ? 'last_payment_error' OR attention IS DISTINCT FROM 'payment_failed'
                                         THEN v_error ELSE coalesce(last_payment_error, v_error) END,
               attention = 'payment_failed',
               attention_detail = CASE WHEN p_obj ? 'last_payment_error' OR attention IS DISTINCT FROM 'payment_failed'
                                       THEN v_error ELSE coalesce(attention_detail, v_error) END,
               decline_lookup_at = CASE WHEN EXISTS (SELECT 1 FROM crm.payment_failures
                                                      WHERE invoice_id = v_id AND created_at > now() - interval '1 hour')
                                        THEN NULL ELSE now() END,
               decline_lookup_attempts = 0
         WHERE id = v_id;
        PERFORM crm.write_invoice_audit(v_id, v_inv.status, v_to, p_event_id, p_type,
                                        jsonb_build_object('payment_error', v_error));
        v_changes := v_changes || 'payment_failed'::text;
    END IF;

    -- One UPDATE for the amount and the status (each extra row version of an invoice costs
    -- every index a new entry, and re-checks its foreign keys).
    IF v_amount_paid > v_inv.amount_paid_cents AND v_to = v_inv.status THEN
        UPDATE crm.invoices SET amount_paid_cents = greatest(amount_paid_cents, v_amount_paid) WHERE id = v_id;
    END IF;
    IF v_to <> v_inv.status THEN
        UPDATE crm.invoices
           SET status = v_to,
               amount_paid_cents = greatest(amount_paid_cents, coalesce(v_amount_paid, 0)),
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
    INSERT INTO crm.stripe_events (id, type, mode, api_version, object_id, outcome, source, stripe_created_at, payload,
                                   webhook_received_at)
    VALUES (v_id, v_type, p_mode, p_event ->> 'api_version', v_obj ->> 'id', 'ignored', p_source,
            crm.jsonb_epoch(p_event -> 'created'), p_event, CASE WHEN p_source = 'webhook' THEN now() END)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        -- A webhook arriving after reconcile recorded the event: it was late, not missed.
        UPDATE crm.stripe_events SET duplicate_deliveries = duplicate_deliveries + 1,
               webhook_received_at = COALESCE(webhook_received_at, CASE WHEN p_source = 'webhook' THEN now() END)
        WHERE id = v_id
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
            THEN crm.apply_stripe_refund_event(v_id, v_type, v_obj, p_mode, crm.jsonb_epoch(p_event -> 'created'))
        WHEN v_type = 'payment_intent.processing'
            THEN crm.apply_stripe_payment_intent_event(v_id, v_type, v_obj, p_mode,
                                                       crm.jsonb_epoch(p_event -> 'created'))
        -- The decline is recorded (crm.payment_failures), then the invoice follows
        -- crm.apply_stripe_payment_intent_event's rules (bank debits).
        WHEN v_type = 'payment_intent.payment_failed'
            THEN crm.apply_stripe_payment_failed(v_id, v_obj, p_mode, crm.jsonb_epoch(p_event -> 'created'))
        WHEN v_type IN ('charge.dispute.created', 'charge.dispute.updated', 'charge.dispute.closed')
            THEN crm.apply_stripe_dispute_event(v_id, v_type, v_obj, p_mode)
        ELSE jsonb_build_object('outcome', 'ignored', 'detail', 'event type not handled')
    END;

    UPDATE crm.stripe_events
       SET outcome = v_result ->> 'outcome', invoice_id = (v_result ->> 'invoice_id')::bigint,
           detail = v_result ->> 'detail'
     WHERE id = v_id;
    RETURN jsonb_build_object('resend_ids_to_cancel', '[]'::jsonb, 'job_completed', false) || v_result;
END;
$$;
