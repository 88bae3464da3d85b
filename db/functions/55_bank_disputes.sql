-- Money beyond Paid: bank debits on their way (payment_intent.processing, then the payment
-- or payment_intent.payment_failed) and disputes (charge.dispute.*). Both states are
-- derived: an open invoice with processing_payment_intent_id set is Processing (the
-- attempt crm.refresh_invoice_processing picks from crm.payment_attempts); an invoice
-- with an open crm.disputes row is Disputed (crm.invoice_display_status).

-- The one home of 'processing': an open invoice with a bank debit on its way; otherwise
-- the stored status. What reminders and event handlers go by.
CREATE OR REPLACE FUNCTION crm.invoice_processing_status(p_status text, p_processing_pi text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_status = 'open' AND p_processing_pi IS NOT NULL THEN 'processing' ELSE p_status END;
$$;


-- The status the dashboard shows: the stored one, or a derived one (processing, disputed,
-- overdue) on top of it.
CREATE OR REPLACE FUNCTION crm.invoice_display_status(p_status text, p_due_date date, p_processing_pi text,
                                                      p_open_disputes bigint, p_today date)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_open_disputes > 0 AND p_status IN ('open', 'paid') THEN 'disputed'
        WHEN p_status = 'open' AND p_processing_pi IS NULL AND p_due_date < p_today THEN 'overdue'
        ELSE crm.invoice_processing_status(p_status, p_processing_pi)
    END;
$$;


-- The CRM invoice a PaymentIntent pays. Since API 2025-03-31 a PaymentIntent names no
-- invoice, so only what Stripe told us links them: the invoice's default payment intent,
-- recorded right after finalize (crm.payment_intent_links, like any InvoicePayment's), the
-- payment recorded for it, or an attempt already seen. Stripe's description text and the
-- amount are never guessed from.
CREATE OR REPLACE FUNCTION crm.find_invoice_for_payment_intent(p_obj jsonb, p_mode text)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT invoice_id FROM crm.payment_intent_links WHERE stripe_payment_intent_id = p_obj ->> 'id'),
        (SELECT invoice_id FROM crm.payments WHERE stripe_payment_intent_id = p_obj ->> 'id' ORDER BY id LIMIT 1),
        (SELECT invoice_id FROM crm.payment_attempts WHERE stripe_payment_intent_id = p_obj ->> 'id'
          ORDER BY id LIMIT 1),
        (SELECT id FROM crm.invoices WHERE processing_payment_intent_id = p_obj ->> 'id' ORDER BY id LIMIT 1));
$$;


-- Which attempt the invoice is Processing on, from its attempts alone: one still processing
-- that no other attempt started after (Stripe starts no new attempt on a payment intent
-- while one is processing, so a later attempt means this one is over, whatever the delivery
-- order). A tie goes to the processing one. The invoice's processing_* columns follow.
CREATE OR REPLACE FUNCTION crm.refresh_invoice_processing(p_invoice_id bigint)
RETURNS crm.payment_attempts
LANGUAGE plpgsql AS $$
DECLARE
    v_cur crm.payment_attempts;
BEGIN
    SELECT a.* INTO v_cur FROM crm.payment_attempts a
     WHERE a.invoice_id = p_invoice_id AND a.status = 'processing'
       AND NOT EXISTS (SELECT 1 FROM crm.payment_attempts b
                        WHERE b.invoice_id = a.invoice_id AND b.started_at > a.started_at)
     ORDER BY a.started_at DESC, a.id DESC LIMIT 1;
    UPDATE crm.invoices
       SET processing_payment_intent_id = v_cur.stripe_payment_intent_id,
           processing_charge_id = nullif(v_cur.stripe_charge_id, ''),
           processing_amount_cents = v_cur.amount_cents, processing_since = v_cur.started_at
     WHERE id = p_invoice_id AND status = 'open'
       AND (processing_payment_intent_id IS DISTINCT FROM v_cur.stripe_payment_intent_id
            OR processing_charge_id IS DISTINCT FROM nullif(v_cur.stripe_charge_id, ''));
    RETURN v_cur;
END;
$$;


-- payment_intent.processing: a bank debit is on its way; the invoice shows Processing and
-- its reminders pause (those already built are cancelled and kept for later).
-- payment_intent.payment_failed: the debit (or a card) failed; the invoice is open again,
-- flagged for staff with Stripe's reason, and its reminders resume.
-- Both are decided per attempt (crm.payment_attempts) by Stripe's event time, so a late
-- processing event never revives an attempt that failed or was overtaken, and a failure
-- ends only its own attempt.
CREATE OR REPLACE FUNCTION crm.apply_stripe_payment_intent_event(p_event_id text, p_type text, p_obj jsonb,
                                                                 p_mode text, p_created timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_pi text := p_obj ->> 'id';
    v_at timestamptz := coalesce(p_created, now());
    v_processing boolean := p_type = 'payment_intent.processing';
    v_charge text := coalesce(CASE WHEN v_processing THEN p_obj ->> 'latest_charge'
                                   ELSE coalesce(p_obj #>> '{last_payment_error,charge}', p_obj ->> 'latest_charge')
                              END, '');
    -- a nonsensical amount is left out rather than refused: the attempt's state still counts
    v_amount bigint := CASE WHEN crm.jsonb_cents(p_obj -> 'amount') > 0 THEN crm.jsonb_cents(p_obj -> 'amount') END;
    v_id bigint;
    v_inv crm.invoices;
    v_lock record;
    v_attempt crm.payment_attempts;
    v_cur crm.payment_attempts;
    v_was boolean;
    v_now boolean;
    v_shown text;
    v_error text;
    v_resend text[] := '{}';
BEGIN
    PERFORM crm.lock_stripe_payment(ARRAY[v_pi]);
    v_id := crm.find_invoice_for_payment_intent(p_obj, p_mode);
    v_lock := crm.lock_event_invoice(v_id, p_mode, 'no CRM invoice for ' || coalesce(v_pi, '?'));
    IF v_lock.refusal IS NOT NULL THEN
        RETURN v_lock.refusal;
    END IF;
    v_inv := v_lock.inv;
    v_shown := crm.invoice_processing_status(v_inv.status, v_inv.processing_payment_intent_id);
    v_was := v_shown = 'processing';
    IF v_inv.status NOT IN ('open', 'uncollectible')
       OR (v_processing AND (v_inv.status <> 'open' OR p_obj ->> 'status' IS DISTINCT FROM 'processing'))
       OR EXISTS (SELECT 1 FROM crm.payments WHERE stripe_payment_intent_id = v_pi) THEN
        RETURN jsonb_build_object('outcome', 'ignored', 'invoice_id', v_id, 'job_id', v_inv.job_id,
                                  'detail', format('nothing to change (invoice is %s)', v_shown));
    END IF;

    IF v_processing THEN
        INSERT INTO crm.payment_attempts AS a (invoice_id, mode, stripe_payment_intent_id, stripe_charge_id, status,
                                               amount_cents, started_at, status_at, stripe_event_id)
        VALUES (v_id, p_mode, v_pi, v_charge, 'processing', v_amount, v_at, v_at,
                p_event_id)
        ON CONFLICT (stripe_payment_intent_id, stripe_charge_id)
            DO UPDATE SET started_at = least(a.started_at, excluded.started_at),
                          amount_cents = coalesce(a.amount_cents, excluded.amount_cents)
        RETURNING * INTO v_attempt;
    ELSE
        INSERT INTO crm.payment_attempts AS a (invoice_id, mode, stripe_payment_intent_id, stripe_charge_id, status,
                                               amount_cents, started_at, status_at, stripe_event_id)
        VALUES (v_id, p_mode, v_pi, v_charge, 'failed', v_amount, v_at, v_at, p_event_id)
        ON CONFLICT (stripe_payment_intent_id, stripe_charge_id)
            DO UPDATE SET status = 'failed', status_at = excluded.status_at, stripe_event_id = excluded.stripe_event_id
            WHERE a.status = 'processing';
        SELECT * INTO v_attempt FROM crm.payment_attempts
         WHERE stripe_payment_intent_id = v_pi AND stripe_charge_id = v_charge;
        -- A debit recorded before its charge was known (migration 0020) ends with it.
        UPDATE crm.payment_attempts SET status = 'failed', status_at = v_at, stripe_event_id = p_event_id
         WHERE stripe_payment_intent_id = v_pi AND stripe_charge_id = '' AND status = 'processing'
           AND started_at <= v_at;
    END IF;
    v_cur := crm.refresh_invoice_processing(v_id);
    v_now := v_inv.status = 'open' AND v_cur.id IS NOT NULL;

    IF v_processing THEN
        IF v_now AND NOT v_was THEN
            PERFORM crm.write_invoice_audit(v_id, 'open', 'processing', p_event_id, p_type,
                jsonb_build_object('payment_intent', v_pi, 'charge', nullif(v_charge, ''),
                                   'amount_cents', v_attempt.amount_cents,
                                   'payment_method_types', p_obj -> 'payment_method_types'));
            v_resend := crm.requeue_invoice_reminders(v_id, 'payment_processing');
            RETURN jsonb_build_object('outcome', 'applied', 'invoice_id', v_id, 'job_id', v_inv.job_id,
                                      'from_status', 'open', 'to_status', 'open',
                                      'resend_ids_to_cancel', to_jsonb(v_resend),
                                      'detail', 'bank payment processing; reminders paused');
        END IF;
        RETURN jsonb_build_object('outcome', 'ignored', 'invoice_id', v_id, 'job_id', v_inv.job_id,
                                  'detail', CASE WHEN v_cur.id = v_attempt.id THEN 'attempt already processing'
                                                 ELSE format('stale: attempt %s failed or was overtaken',
                                                             coalesce(nullif(v_charge, ''), v_pi)) END);
    END IF;

    -- payment_intent.payment_failed: the decline is shown whatever the order (staff see every
    -- failure), but it ends only its own attempt: a later one still processing stays so.
    v_error := crm.decline_text(p_obj #>> '{last_payment_error,code}', p_obj #>> '{last_payment_error,decline_code}',
                                coalesce(p_obj #>> '{last_payment_error,message}', 'The payment failed'));
    UPDATE crm.invoices SET last_payment_error = v_error, attention = 'payment_failed', attention_detail = v_error
     WHERE id = v_id;
    PERFORM crm.write_invoice_audit(v_id, v_shown, CASE WHEN v_now THEN 'processing' ELSE v_inv.status END,
        p_event_id, p_type,
        jsonb_build_object('payment_intent', v_pi, 'charge', nullif(v_charge, ''), 'payment_error', v_error));
    RETURN jsonb_build_object('outcome', 'applied', 'invoice_id', v_id, 'job_id', v_inv.job_id,
                              'from_status', v_inv.status, 'to_status', v_inv.status,
                              'detail', CASE WHEN v_was AND NOT v_now THEN 'bank payment failed; reminders resume'
                                             WHEN v_now THEN 'an earlier attempt failed; the later one is still processing'
                                             ELSE 'payment failed' END);
END;
$$;


-- The debit settled: its payment is recorded (invoice_payment.paid, or reconcile); the
-- payment intent's attempts still processing succeeded with it.
CREATE OR REPLACE FUNCTION crm.clear_processing_on_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_was boolean;
BEGIN
    UPDATE crm.payment_attempts SET status = 'succeeded', status_at = now()
     WHERE stripe_payment_intent_id = NEW.stripe_payment_intent_id AND status = 'processing';
    SELECT processing_payment_intent_id = NEW.stripe_payment_intent_id INTO v_was
      FROM crm.invoices WHERE id = NEW.invoice_id;
    PERFORM crm.refresh_invoice_processing(NEW.invoice_id);
    IF v_was AND (SELECT status = 'open' AND processing_payment_intent_id IS NULL
                         AND amount_due_cents > (SELECT sum(amount_cents) FROM crm.payments p
                                                  WHERE p.invoice_id = NEW.invoice_id)
                    FROM crm.invoices WHERE id = NEW.invoice_id) THEN
        -- Settled for part of the invoice: it is open for the rest (paid in full, invoice.paid says so).
        PERFORM crm.write_audit('invoice', NEW.invoice_id, 'processing', 'open', 'stripe_event',
                                coalesce(NEW.stripe_event_id, 'system'),
                                jsonb_build_object('payment_intent', NEW.stripe_payment_intent_id,
                                                   'settled_cents', NEW.amount_cents),
                                NEW.stripe_event_id);
    END IF;
    RETURN NULL;
END;
$$;


CREATE OR REPLACE TRIGGER payments_clear_processing
    AFTER INSERT OR UPDATE OF stripe_payment_intent_id ON crm.payments
    FOR EACH ROW
    WHEN (NEW.stripe_payment_intent_id IS NOT NULL)
    EXECUTE FUNCTION crm.clear_processing_on_payment();


-- Paid, void or uncollectible: nothing is processing on the invoice any more.
CREATE OR REPLACE FUNCTION crm.clear_processing_when_closed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.processing_payment_intent_id := NULL;
    NEW.processing_charge_id := NULL;
    NEW.processing_amount_cents := NULL;
    NEW.processing_since := NULL;
    RETURN NEW;
END;
$$;


CREATE OR REPLACE TRIGGER invoices_clear_processing_when_closed
    BEFORE UPDATE OF status ON crm.invoices
    FOR EACH ROW
    WHEN (NEW.status <> 'open' AND NEW.processing_payment_intent_id IS NOT NULL)
    EXECUTE FUNCTION crm.clear_processing_when_closed();


CREATE OR REPLACE FUNCTION crm.dispute_is_final(p_status text)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_status IN ('won', 'lost', 'warning_closed', 'prevented');
$$;


-- charge.dispute.*: one crm.disputes row per Stripe dispute, linked to the payment (and its
-- invoice) through the charge or payment intent recorded on crm.payments. Safe to apply
-- again and in any order: a final status (won, lost, ...) never moves, and an event for a
-- dispute recorded before its payment was known links it when applied (replayed) later.
CREATE OR REPLACE FUNCTION crm.apply_stripe_dispute_event(p_event_id text, p_type text, p_obj jsonb, p_mode text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_charge text := p_obj ->> 'charge';
    v_intent text := p_obj ->> 'payment_intent';
    v_status text := p_obj ->> 'status';
    v_amount bigint := crm.jsonb_cents(p_obj -> 'amount');
    v_payment crm.payments;
    v_inv crm.invoices;
    v_old crm.disputes;
    v_new crm.disputes;
    v_open_before boolean;
    v_open_after boolean;
BEGIN
    IF (p_obj ->> 'id') !~ '^(dp|du)_' OR v_amount IS NULL OR v_status IS NULL
       OR v_status NOT IN ('warning_needs_response', 'warning_under_review', 'warning_closed', 'needs_response',
                           'under_review', 'won', 'lost', 'prevented') THEN
        RETURN jsonb_build_object('outcome', 'ignored', 'detail', 'not a dispute this CRM can record');
    END IF;
    SELECT * INTO v_payment FROM crm.payments
     WHERE (v_charge IS NOT NULL AND stripe_charge_id = v_charge)
        OR (v_intent IS NOT NULL AND stripe_payment_intent_id = v_intent)
     ORDER BY id LIMIT 1;
    IF v_payment.id IS NOT NULL THEN
        SELECT * INTO v_inv FROM crm.invoices WHERE id = v_payment.invoice_id FOR UPDATE;
        IF v_payment.mode <> p_mode THEN
            RETURN jsonb_build_object('outcome', 'rejected', 'invoice_id', v_inv.id,
                                      'detail', format('event is %s mode, payment was made in %s mode', p_mode,
                                                       v_payment.mode));
        END IF;
    END IF;

    SELECT * INTO v_old FROM crm.disputes WHERE stripe_dispute_id = p_obj ->> 'id' FOR UPDATE;
    IF v_old.id IS NULL THEN
        INSERT INTO crm.disputes (invoice_id, payment_id, mode, stripe_dispute_id, stripe_charge_id,
                                  stripe_payment_intent_id, stripe_event_id, amount_cents, currency, reason, status,
                                  evidence_due_by, opened_at, closed_at)
        VALUES (v_inv.id, v_payment.id, p_mode, p_obj ->> 'id', v_charge, v_intent, p_event_id, v_amount,
                coalesce(p_obj ->> 'currency', v_payment.currency, 'usd'), p_obj ->> 'reason', v_status,
                crm.jsonb_epoch(p_obj #> '{evidence_details,due_by}'),
                coalesce(crm.jsonb_epoch(p_obj -> 'created'), now()),
                CASE WHEN crm.dispute_is_final(v_status) THEN now() END)
        ON CONFLICT (stripe_dispute_id) DO NOTHING
        RETURNING * INTO v_new;
        v_open_before := false;
    ELSE
        v_open_before := v_old.invoice_id IS NOT NULL AND NOT crm.dispute_is_final(v_old.status);
        UPDATE crm.disputes
           SET invoice_id = coalesce(invoice_id, v_inv.id), payment_id = coalesce(payment_id, v_payment.id),
               status = CASE WHEN crm.dispute_is_final(status) THEN status ELSE v_status END,
               closed_at = CASE WHEN crm.dispute_is_final(status) THEN closed_at
                                WHEN crm.dispute_is_final(v_status) THEN now() END,
               amount_cents = CASE WHEN crm.dispute_is_final(status) THEN amount_cents ELSE v_amount END,
               reason = coalesce(p_obj ->> 'reason', reason),
               evidence_due_by = coalesce(crm.jsonb_epoch(p_obj #> '{evidence_details,due_by}'), evidence_due_by),
               stripe_payment_intent_id = coalesce(stripe_payment_intent_id, v_intent),
               stripe_event_id = p_event_id
         WHERE id = v_old.id
           AND (invoice_id IS DISTINCT FROM coalesce(invoice_id, v_inv.id)
                OR (NOT crm.dispute_is_final(status)
                    AND (status <> v_status OR amount_cents <> v_amount
                         OR evidence_due_by IS DISTINCT FROM
                            coalesce(crm.jsonb_epoch(p_obj #> '{evidence_details,due_by}'), evidence_due_by))))
        RETURNING * INTO v_new;
    END IF;

    IF v_new.id IS NULL THEN
        RETURN jsonb_build_object('outcome', CASE WHEN v_payment.id IS NULL THEN 'unmatched' ELSE 'ignored' END,
                                  'invoice_id', v_inv.id, 'job_id', v_inv.job_id,
                                  'detail', 'dispute already recorded');
    END IF;
    IF v_payment.id IS NULL THEN
        RETURN jsonb_build_object('outcome', 'unmatched',
                                  'detail', format('dispute %s recorded; no CRM payment for %s yet', v_new.stripe_dispute_id,
                                                   coalesce(v_intent, v_charge, '?')));
    END IF;

    -- The derived status moves: audited on the invoice, so its timeline shows it.
    v_open_after := NOT crm.dispute_is_final(v_new.status);
    IF v_open_after AND NOT v_open_before THEN
        PERFORM crm.write_invoice_audit(v_inv.id, v_inv.status, 'disputed', p_event_id, p_type,
            jsonb_build_object('dispute', v_new.stripe_dispute_id, 'amount_cents', v_new.amount_cents,
                               'reason', v_new.reason, 'dispute_status', v_new.status,
                               'evidence_due_by', v_new.evidence_due_by));
    ELSIF NOT v_open_after AND (v_open_before OR v_old.id IS NULL OR v_old.invoice_id IS NULL) THEN
        PERFORM crm.write_invoice_audit(v_inv.id, CASE WHEN v_open_before THEN 'disputed' ELSE v_inv.status END,
            CASE v_new.status WHEN 'lost' THEN 'dispute_lost' ELSE v_inv.status END, p_event_id, p_type,
            jsonb_build_object('dispute', v_new.stripe_dispute_id, 'amount_cents', v_new.amount_cents,
                               'dispute_status', v_new.status));
    END IF;
    RETURN jsonb_build_object('outcome', 'applied', 'invoice_id', v_inv.id, 'job_id', v_inv.job_id,
                              'from_status', v_inv.status, 'to_status', v_inv.status,
                              'detail', format('dispute %s %s', v_new.stripe_dispute_id, v_new.status));
END;
$$;


CREATE OR REPLACE TRIGGER disputes_touch
    BEFORE UPDATE ON crm.disputes
    FOR EACH ROW EXECUTE FUNCTION crm.touch_updated_at();


-- The invoice's default payment intent, recorded by the Send right after finalize: every
-- payment_intent.* event for it is matched by it exactly. Events that came first (the
-- customer paid within the moment) were recorded unmatched and are applied now.
CREATE OR REPLACE FUNCTION crm.record_default_payment_intent(p_invoice_id bigint, p_mode text, p_intent text,
                                                             p_invoice_payment_id text)
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF crm.link_payment_intent(p_intent, p_invoice_id, p_mode, p_invoice_payment_id) THEN
        RETURN crm.replay_unmatched_events(p_mode, p_intent);
    END IF;
    RETURN 0;
END;
$$;
