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

    -- A credit note issued after sending lowers what is due (Stripe's amount_due and
    -- amount_remaining): the CRM's outstanding follows it. Only downwards, so a stale
    -- snapshot from before the credit note changes nothing.
    IF crm.jsonb_cents(p_obj -> 'pre_payment_credit_notes_amount') > 0 AND v_inv.status NOT IN ('draft', 'sending')
       AND crm.jsonb_cents(p_obj -> 'amount_due') < v_inv.amount_due_cents THEN
        UPDATE crm.invoices SET amount_due_cents = crm.jsonb_cents(p_obj -> 'amount_due') WHERE id = v_id;
        PERFORM crm.write_invoice_audit(v_id, v_inv.status, v_inv.status, p_event_id, p_type,
            jsonb_build_object('credit_notes_cents', crm.jsonb_cents(p_obj -> 'pre_payment_credit_notes_amount'),
                               'amount_due_cents', crm.jsonb_cents(p_obj -> 'amount_due'),
                               'was_due_cents', v_inv.amount_due_cents));
        v_changes := v_changes || 'credit note'::text;
        v_inv.amount_due_cents := crm.jsonb_cents(p_obj -> 'amount_due');
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

    -- Paid with nothing remaining and less paid through Stripe than was due: the rest was
    -- paid out of band (POST /v1/invoices/{id}/pay with paid_out_of_band, the owner's "paid in
    -- cash or by check"). Recorded once, as a payment without a Stripe fee.
    IF v_to = 'paid' AND v_inv.status <> 'paid' AND crm.jsonb_cents(p_obj -> 'amount_remaining') = 0
       AND crm.jsonb_cents(p_obj -> 'amount_due') > coalesce(v_amount_paid, 0) THEN
        INSERT INTO crm.payments (invoice_id, mode, stripe_payment_id, stripe_event_id, amount_cents, currency,
                                  paid_at, method, fee_cents, net_cents)
        SELECT v_id, p_mode, 'oob_' || (p_obj ->> 'id'), p_event_id, due - coalesce(v_amount_paid, 0),
               coalesce(p_obj ->> 'currency', v_inv.currency),
               coalesce(crm.jsonb_epoch(p_obj #> '{status_transitions,paid_at}'), now()), 'out_of_band', 0,
               due - coalesce(v_amount_paid, 0)
          FROM (SELECT crm.jsonb_cents(p_obj -> 'amount_due') AS due) d
        ON CONFLICT DO NOTHING;
        v_amount_paid := crm.jsonb_cents(p_obj -> 'amount_due');
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


-- The id prefixes Stripe gives each kind of object the CRM reads (charges of non-card
-- payment methods are py_, their refunds pyr_, some disputes du_).
CREATE OR REPLACE FUNCTION crm.stripe_id_prefixes(p_kind text)
RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_kind
        WHEN 'invoice' THEN ARRAY['in_']
        WHEN 'invoice_payment' THEN ARRAY['inpay_']
        WHEN 'payment_intent' THEN ARRAY['pi_']
        WHEN 'charge' THEN ARRAY['ch_', 'py_']
        WHEN 'refund' THEN ARRAY['re_', 'pyr_']
        WHEN 'dispute' THEN ARRAY['dp_', 'du_']
    END;
$$;


-- Why a verified event is refused before anything is applied, or NULL (pure: tested
-- without I/O in tests/test_webhook_constraint.py). Refused: an event from a connected
-- account (top-level `account`: Stripe sets it only for Connect events, another
-- business's money); a data.object that is not an object; for the types the CRM handles,
-- an object id that is missing or not the kind's prefix, a reference to a payment intent,
-- charge or invoice with the wrong prefix, a status or currency that is null or not
-- Stripe's form, an array or scalar where Stripe sends an object, an amount that is not a
-- whole, non-negative number of minor units. The reason quotes no payload value except a
-- connected account's id.
CREATE OR REPLACE FUNCTION crm.stripe_event_refusal(p_event jsonb)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_obj jsonb := p_event #> '{data,object}';
    v_type text := p_event ->> 'type';
    v_kind text;
    v_name text;
    v_value jsonb;
    -- Where the object names another: {path, kind}.
    v_refs constant text[][] := ARRAY[['payment_intent', 'payment_intent'], ['charge', 'charge'],
                                      ['latest_charge', 'charge'], ['invoice', 'invoice'],
                                      ['payment,payment_intent', 'payment_intent'], ['payment,charge', 'charge'],
                                      ['last_payment_error,charge', 'charge']];
BEGIN
    IF p_event ? 'account' AND jsonb_typeof(p_event -> 'account') <> 'null' THEN
        RETURN 'event from a connected account (' || left(coalesce(p_event ->> 'account', '?'), 60)
               || '): the CRM applies only its own account''s events';
    END IF;
    IF jsonb_typeof(v_obj) IS DISTINCT FROM 'object' THEN
        RETURN 'data.object missing or not an object';
    END IF;
    FOREACH v_name IN ARRAY ARRAY['amount_paid', 'amount_due', 'amount_remaining', 'amount', 'amount_refunded'] LOOP
        v_value := v_obj -> v_name;
        IF jsonb_typeof(v_value) <> 'null'
           AND (jsonb_typeof(v_value) <> 'number' OR (v_value #>> '{}') !~ '^\d{1,18}$') THEN
            RETURN format('data.object.%s is not a whole number of cents', v_name);
        END IF;
    END LOOP;
    v_kind := CASE
        WHEN v_type LIKE 'invoice.%' THEN 'invoice'
        WHEN v_type LIKE 'invoice_payment.%' THEN 'invoice_payment'
        WHEN v_type LIKE 'payment_intent.%' THEN 'payment_intent'
        WHEN v_type = 'charge.refunded' THEN 'charge'
        WHEN v_type LIKE 'refund.%' THEN 'refund'
        WHEN v_type LIKE 'charge.dispute.%' THEN 'dispute'
    END;
    IF v_kind IS NULL THEN
        RETURN NULL;  -- a type the CRM does not act on is recorded 'ignored', whatever it holds
    END IF;
    IF jsonb_typeof(v_obj -> 'id') IS DISTINCT FROM 'string'
       OR NOT (v_obj ->> 'id') LIKE ANY (SELECT replace(p, '_', '\_') || '%' FROM unnest(crm.stripe_id_prefixes(v_kind)) p) THEN
        RETURN format('data.object.id is missing or does not start with %s (a %s id)',
                      array_to_string(crm.stripe_id_prefixes(v_kind), ' or '), v_kind);
    END IF;
    FOR i IN 1..array_length(v_refs, 1) LOOP
        v_value := v_obj #> string_to_array(v_refs[i][1], ',');
        -- An expanded reference is an object with the id inside; a string is the id itself.
        IF jsonb_typeof(v_value) = 'object' THEN
            v_value := v_value -> 'id';
        END IF;
        IF jsonb_typeof(v_value) <> 'null' AND (jsonb_typeof(v_value) <> 'string'
           OR NOT (v_value #>> '{}') LIKE ANY (SELECT replace(p, '_', '\_') || '%'
                                               FROM unnest(crm.stripe_id_prefixes(v_refs[i][2])) p)) THEN
            RETURN format('data.object.%s does not start with %s (a %s id)', replace(v_refs[i][1], ',', '.'),
                          array_to_string(crm.stripe_id_prefixes(v_refs[i][2]), ' or '), v_refs[i][2]);
        END IF;
    END LOOP;
    IF v_obj ? 'status' AND (jsonb_typeof(v_obj -> 'status') IS DISTINCT FROM 'string' OR v_obj ->> 'status' !~ '^[a-z_]{1,40}$') THEN
        RETURN 'data.object.status is null or not a Stripe status';
    END IF;
    IF v_obj ? 'currency' AND (jsonb_typeof(v_obj -> 'currency') IS DISTINCT FROM 'string'
                               OR v_obj ->> 'currency' !~ '^[a-z]{3}$') THEN
        RETURN 'data.object.currency is not a three-letter lowercase ISO code';
    END IF;
    FOREACH v_name IN ARRAY ARRAY['metadata', 'payment', 'status_transitions', 'last_payment_error',
                                  'evidence_details', 'refunds'] LOOP
        IF jsonb_typeof(v_obj -> v_name) NOT IN ('object', 'null') THEN
            RETURN format('data.object.%s is not an object', v_name);
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;


-- The owner-readable reason for an error Postgres raised while applying an event: the
-- condition and the constraint or column it names, never the message (it can quote the
-- payload).
CREATE OR REPLACE FUNCTION crm.database_refusal(p_state text, p_constraint text, p_column text, p_table text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('the database refused the event: %s%s (SQLSTATE %s)',
                  CASE p_state
                      WHEN '23502' THEN 'a required value is missing (null)'
                      WHEN '23514' THEN 'a value is not allowed'
                      WHEN '23503' THEN 'it names a row that does not exist'
                      WHEN '23505' THEN 'it conflicts with a recorded one'
                      WHEN '22P02' THEN 'a value has the wrong type'
                      WHEN '22003' THEN 'a number is out of range'
                      WHEN '22008' THEN 'a time is out of range'
                      WHEN '22023' THEN 'a value has the wrong shape'
                      WHEN '22001' THEN 'a text is too long'
                      ELSE CASE WHEN p_state LIKE '23%' THEN 'a constraint is violated'
                                ELSE 'a value cannot be stored' END
                  END,
                  CASE WHEN nullif(p_constraint, '') IS NOT NULL THEN format(' (%s)', p_constraint)
                       WHEN nullif(p_column, '') IS NOT NULL
                           THEN format(' (%s)', concat_ws('.', nullif(p_table, ''), p_column))
                       ELSE '' END,
                  p_state);
$$;


-- Records a verified event the CRM refuses: outcome 'rejected' with the reason, nothing
-- else changed. A concurrent delivery of the same event that recorded it first makes this
-- one a duplicate. `created` out of range is not a reason to lose the row: it is left NULL.
CREATE OR REPLACE FUNCTION crm.record_rejected_stripe_event(p_event jsonb, p_mode text, p_source text, p_reason text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_created bigint := crm.jsonb_cents(p_event -> 'created');
BEGIN
    INSERT INTO crm.stripe_events (id, type, mode, api_version, object_id, outcome, detail, source,
                                   stripe_created_at, payload, webhook_received_at)
    VALUES (p_event ->> 'id', p_event ->> 'type', p_mode, left(p_event ->> 'api_version', 100),
            left(p_event #>> '{data,object,id}', 255), 'rejected', left(p_reason, 500), p_source,
            CASE WHEN v_created BETWEEN 0 AND 253402300799 THEN to_timestamp(v_created) END, p_event,
            CASE WHEN p_source = 'webhook' THEN now() END)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN crm.stripe_event_duplicate(p_event ->> 'id', p_source);
    END IF;
    RETURN jsonb_build_object('outcome', 'rejected', 'detail', left(p_reason, 500),
                              'resend_ids_to_cancel', '[]'::jsonb, 'job_completed', false);
END;
$$;


CREATE OR REPLACE FUNCTION crm.stripe_event_duplicate(p_id text, p_source text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_previous text;
BEGIN
    -- A webhook arriving after reconcile recorded the event: it was late, not missed.
    UPDATE crm.stripe_events SET duplicate_deliveries = duplicate_deliveries + 1,
           webhook_received_at = COALESCE(webhook_received_at, CASE WHEN p_source = 'webhook' THEN now() END)
    WHERE id = p_id
    RETURNING outcome INTO v_previous;
    RETURN jsonb_build_object('outcome', 'duplicate', 'detail', 'already processed: ' || v_previous,
                              'resend_ids_to_cancel', '[]'::jsonb, 'job_completed', false);
END;
$$;


-- Ledger insert (dedup), dispatch on type, ledger outcome. Errors propagate to
-- crm.apply_stripe_event, which decides what they mean.
CREATE OR REPLACE FUNCTION crm.record_and_apply_stripe_event(p_event jsonb, p_mode text, p_source text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_id text := p_event ->> 'id';
    v_type text := p_event ->> 'type';
    v_obj jsonb := p_event #> '{data,object}';
    v_result jsonb;
    v_refusal text;
BEGIN
    INSERT INTO crm.stripe_events (id, type, mode, api_version, object_id, outcome, source, stripe_created_at, payload,
                                   webhook_received_at)
    VALUES (v_id, v_type, p_mode, p_event ->> 'api_version', v_obj ->> 'id', 'ignored', p_source,
            crm.jsonb_epoch(p_event -> 'created'), p_event, CASE WHEN p_source = 'webhook' THEN now() END)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN crm.stripe_event_duplicate(v_id, p_source);
    END IF;

    v_refusal := crm.stripe_event_refusal(p_event);
    v_result := CASE
        WHEN v_refusal IS NOT NULL
            THEN jsonb_build_object('outcome', 'rejected', 'detail', v_refusal)
        WHEN v_type IN ('invoice.paid', 'invoice.payment_succeeded', 'invoice.payment_failed', 'invoice.voided',
                        'invoice.marked_uncollectible', 'invoice.finalized', 'invoice.sent', 'invoice.updated')
            THEN crm.apply_stripe_invoice_event(v_id, v_type, v_obj, p_mode)
        WHEN v_type = 'invoice_payment.paid'
            THEN crm.apply_stripe_invoice_payment(v_id, v_obj, p_mode)
        WHEN v_type IN ('charge.refunded', 'refund.created', 'refund.updated', 'refund.failed',
                        'charge.refund.updated')
            THEN crm.apply_stripe_refund_event(v_id, v_type, v_obj, p_mode, crm.jsonb_epoch(p_event -> 'created'))
        WHEN v_type = 'payment_intent.processing'
            THEN crm.apply_stripe_payment_intent_event(v_id, v_type, v_obj, p_mode,
                                                       crm.jsonb_epoch(p_event -> 'created'))
        -- The decline is recorded (crm.payment_failures), then the invoice follows
        -- crm.apply_stripe_payment_intent_event's rules (bank debits).
        WHEN v_type = 'payment_intent.payment_failed'
            THEN crm.apply_stripe_payment_failed(v_id, v_obj, p_mode, crm.jsonb_epoch(p_event -> 'created'))
        WHEN v_type IN ('charge.dispute.created', 'charge.dispute.updated', 'charge.dispute.closed',
                        'charge.dispute.funds_withdrawn', 'charge.dispute.funds_reinstated')
            THEN crm.apply_stripe_dispute_event(v_id, v_type, v_obj, p_mode, crm.jsonb_epoch(p_event -> 'created'))
        ELSE jsonb_build_object('outcome', 'ignored', 'detail', 'event type not handled')
    END;

    UPDATE crm.stripe_events
       SET outcome = v_result ->> 'outcome', invoice_id = (v_result ->> 'invoice_id')::bigint,
           detail = v_result ->> 'detail'
     WHERE id = v_id;
    RETURN jsonb_build_object('resend_ids_to_cancel', '[]'::jsonb, 'job_completed', false) || v_result;
END;
$$;


-- The one entry point. Returns {outcome: applied|duplicate|ignored|unmatched|rejected,
-- invoice_id, job_id, from_status, to_status, job_completed, resend_ids_to_cancel, detail}.
--
-- Invariant 11: what the database refuses in a verified event's content (class 22, a value
-- it cannot take; class 23, a constraint: a currency of "USD", an id with the wrong prefix,
-- a null status) is recorded 'rejected' with the reason, in place of everything the event
-- would have changed (the block's subtransaction undoes it), and acknowledged: retrying the
-- same bytes can never succeed. A unique violation can also be a concurrent insert that
-- committed while this one waited: the apply is retried once (each statement takes a fresh
-- snapshot, so it now sees that row) before it counts as the content's fault. Anything else
-- (deadlock, lost connection, out of memory) still raises, so the sidecar answers 5xx and
-- Stripe retries.
CREATE OR REPLACE FUNCTION crm.apply_stripe_event(p_event jsonb, p_mode text, p_source text DEFAULT 'webhook')
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_constraint text;
    v_column text;
    v_table text;
BEGIN
    IF p_event ->> 'id' IS NULL OR p_event ->> 'type' IS NULL THEN
        RAISE EXCEPTION 'not a Stripe event (id and type are required)' USING ERRCODE = '22023';
    END IF;
    FOR v_attempt IN 1..2 LOOP
        BEGIN
            RETURN crm.record_and_apply_stripe_event(p_event, p_mode, p_source);
        EXCEPTION WHEN integrity_constraint_violation OR data_exception THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_constraint = CONSTRAINT_NAME,
                                    v_column = COLUMN_NAME, v_table = TABLE_NAME;
        END;
        EXIT WHEN v_state <> '23505';
    END LOOP;
    RETURN crm.record_rejected_stripe_event(p_event, p_mode, p_source,
                                            crm.database_refusal(v_state, v_constraint, v_column, v_table));
END;
$$;
