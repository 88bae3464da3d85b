-- Payments and refunds: invoice_payment.paid links a payment to its payment intent and
-- charge; refund.* and charge.refunded are matched through them; refunded totals are
-- recomputed from the refund rows (and the charge's cumulative amount_refunded as a floor).
-- An event that names a payment not known yet is recorded 'unmatched' and re-applied from
-- its stored payload once the payment arrives (crm.replay_unmatched_events).
--
-- Refunded total (invariant 8): per payment, the larger of the sum of its refunds that
-- Stripe counts in charge.amount_refunded (pending, requires_action, succeeded: one row per
-- refund id) and the charge's amount_refunded last reported by charge.refunded; never
-- above the amount paid. Order, retries and duplicates cannot lower it: refund rows only
-- move forward and the floor only rises. The one thing that lowers it is what lowers it
-- at Stripe: a refund that fails or is canceled (its amount comes back to the balance).

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


-- Serialises everything about one payment: its recording (invoice_payment.paid) and the
-- refund, decline and dispute events that name its payment intent or charge, which cannot
-- lock the invoice before they know it. Without it a refund arriving while its payment
-- commits would miss the payment and stay unmatched. Taken before any invoice row lock.
CREATE OR REPLACE FUNCTION crm.lock_stripe_payment(p_ids text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_key text;
BEGIN
    FOR v_key IN SELECT DISTINCT k FROM unnest(p_ids) AS k WHERE k IS NOT NULL AND k <> '' ORDER BY k LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('crm.stripe_payment:' || v_key, 0));
    END LOOP;
END;
$$;


-- Remembers which invoice a payment intent pays (from any InvoicePayment, paid or not);
-- true when the link is new.
CREATE OR REPLACE FUNCTION crm.link_payment_intent(p_intent text, p_invoice_id bigint, p_mode text,
                                                   p_invoice_payment_id text)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF p_intent IS NULL OR p_intent NOT LIKE 'pi\_%' THEN
        RETURN false;
    END IF;
    INSERT INTO crm.payment_intent_links (stripe_payment_intent_id, invoice_id, mode, stripe_invoice_payment_id)
    VALUES (p_intent, p_invoice_id, p_mode, p_invoice_payment_id)
    ON CONFLICT (stripe_payment_intent_id) DO NOTHING;
    RETURN FOUND;
END;
$$;


-- Re-applies one event recorded 'unmatched', from its stored payload, through the same
-- crm.apply_stripe_event (so every handler, present and future, applies it the same way).
-- The ledger row keeps its id, source, received_at and duplicate count; replayed_at says
-- when it was applied late. Still unmatched: left as it was. Anything else: skipped.
CREATE OR REPLACE FUNCTION crm.replay_stripe_event(p_event_id text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_old crm.stripe_events;
    v_result jsonb;
BEGIN
    SELECT * INTO v_old FROM crm.stripe_events WHERE id = p_event_id FOR UPDATE;
    IF NOT FOUND OR v_old.outcome <> 'unmatched' THEN
        RETURN jsonb_build_object('outcome', 'skipped', 'detail', 'not unmatched');
    END IF;
    DELETE FROM crm.stripe_events WHERE id = p_event_id;
    v_result := crm.apply_stripe_event(v_old.payload, v_old.mode, v_old.source);
    UPDATE crm.stripe_events
       SET received_at = v_old.received_at, duplicate_deliveries = v_old.duplicate_deliveries,
           replayed_at = CASE WHEN outcome = 'unmatched' THEN v_old.replayed_at ELSE now() END,
           detail = CASE WHEN outcome = 'unmatched' THEN v_old.detail
                         ELSE left('applied late (what it names arrived later): ' || coalesce(detail, ''), 500) END
     WHERE id = p_event_id;
    RETURN v_result;
END;
$$;


-- Re-applies the unmatched events of a mode that name a payment intent, a charge or a
-- Stripe invoice (whichever are given), oldest first; returns how many now applied.
-- Called in the transaction that made them known (a payment gaining its ids), so they
-- commit together; the reconciler sweeps whatever is left (crm.unmatched_event_ids).
CREATE OR REPLACE FUNCTION crm.replay_unmatched_events(p_mode text, p_intent text DEFAULT NULL,
                                                       p_charge text DEFAULT NULL,
                                                       p_stripe_invoice text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_event record;
    v_count integer := 0;
BEGIN
    FOR v_event IN
        SELECT id FROM crm.stripe_events e
         WHERE e.outcome = 'unmatched' AND e.mode = p_mode
           AND ((p_intent IS NOT NULL AND p_intent IN (e.payload #>> '{data,object,payment_intent}',
                                                       e.payload #>> '{data,object,id}',
                                                       e.payload #>> '{data,object,payment,payment_intent}'))
             OR (p_charge IS NOT NULL AND p_charge IN (e.payload #>> '{data,object,charge}',
                                                       e.payload #>> '{data,object,id}',
                                                       e.payload #>> '{data,object,payment,charge}'))
             OR (p_stripe_invoice IS NOT NULL AND p_stripe_invoice IN (e.payload #>> '{data,object,invoice}',
                                                                       e.payload #>> '{data,object,id}')))
         ORDER BY e.stripe_created_at NULLS LAST, e.received_at, e.id
    LOOP
        IF (crm.replay_stripe_event(v_event.id) ->> 'outcome') NOT IN ('unmatched', 'skipped') THEN
            v_count := v_count + 1;
        END IF;
    END LOOP;
    RETURN v_count;
END;
$$;


-- The reconciler's sweep: unmatched events of a mode recorded since p_since, oldest first.
CREATE OR REPLACE FUNCTION crm.unmatched_event_ids(p_mode text, p_since timestamptz)
RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT id FROM crm.stripe_events
     WHERE outcome = 'unmatched' AND mode = p_mode AND received_at >= p_since
     ORDER BY stripe_created_at NULLS LAST, received_at, id;
$$;


-- invoice_payment.paid: one payment with its ids; replaces amounts recorded under event ids.
-- Any InvoicePayment (paid or not) links its payment intent to the invoice, so a decline
-- can find it; a new payment re-applies the unmatched events that name its ids.
CREATE OR REPLACE FUNCTION crm.apply_stripe_invoice_payment(p_event_id text, p_obj jsonb, p_mode text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_inv crm.invoices;
    v_lock record;
    v_stripe_invoice text := coalesce(p_obj #>> '{invoice,id}', p_obj ->> 'invoice');
    v_intent text := coalesce(p_obj #>> '{payment,payment_intent,id}', p_obj #>> '{payment,payment_intent}');
    v_charge text := coalesce(p_obj #>> '{payment,charge,id}', p_obj #>> '{payment,charge}');
    v_id bigint;
    v_amount bigint := coalesce(crm.jsonb_cents(p_obj -> 'amount_paid'), 0);
    v_payment_id bigint;
    v_left bigint;
    v_placeholder record;
    v_linked boolean;
    v_replayed integer;
BEGIN
    PERFORM crm.lock_stripe_payment(ARRAY[v_intent, v_charge]);
    v_id := crm.find_invoice_for_stripe(v_stripe_invoice, p_obj #> '{invoice,metadata}');
    v_lock := crm.lock_event_invoice(v_id, p_mode, 'no CRM invoice for ' || coalesce(v_stripe_invoice, '?'));
    IF v_lock.refusal IS NOT NULL THEN
        RETURN v_lock.refusal;
    END IF;
    v_inv := v_lock.inv;
    v_linked := crm.link_payment_intent(v_intent, v_id, p_mode, p_obj ->> 'id');
    IF p_obj ->> 'status' IS DISTINCT FROM 'paid' OR v_amount <= 0 THEN
        v_replayed := CASE WHEN v_linked THEN crm.replay_unmatched_events(p_mode, v_intent) ELSE 0 END;
        RETURN jsonb_build_object('outcome', CASE WHEN v_linked THEN 'applied' ELSE 'ignored' END,
                                  'invoice_id', v_id,
                                  'detail', CASE WHEN v_linked
                                                 THEN format('invoice payment not paid; payment intent linked, %s earlier events applied', v_replayed)
                                                 ELSE 'invoice payment not paid' END);
    END IF;
    INSERT INTO crm.payments (invoice_id, mode, stripe_payment_id, stripe_payment_intent_id, stripe_charge_id,
                              stripe_event_id, amount_cents, currency, paid_at)
    VALUES (v_id, p_mode, p_obj ->> 'id', v_intent, v_charge,
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
    PERFORM crm.write_audit('payment', v_payment_id, NULL, 'paid', 'stripe_event', p_event_id,
                            jsonb_build_object('invoice_id', v_id, 'amount_cents', v_amount), p_event_id);
    -- Refunds (and disputes) that arrived before their payment apply now, in this transaction.
    v_replayed := crm.replay_unmatched_events(p_mode, v_intent, v_charge);
    RETURN jsonb_build_object('outcome', 'applied', 'invoice_id', v_id, 'job_id', v_inv.job_id,
                              'from_status', v_inv.status, 'to_status', v_inv.status,
                              'detail', CASE WHEN v_replayed > 0
                                             THEN format('payment recorded; %s earlier events applied', v_replayed)
                                             ELSE 'payment recorded' END);
END;
$$;


-- Recomputes an invoice's refunded total from its refund rows and each payment's floor
-- (see the rule at the top of this file). The two trailing parameters are unused and kept
-- for the signature's callers.
CREATE OR REPLACE FUNCTION crm.refresh_amount_refunded(p_invoice_id bigint, p_payment_id bigint DEFAULT NULL,
                                                       p_charge_refunded bigint DEFAULT NULL)
RETURNS void
LANGUAGE sql AS $$
    UPDATE crm.invoices i
       SET amount_refunded_cents = least(i.amount_paid_cents, t.total)
      FROM (SELECT coalesce(sum(greatest(p.charge_amount_refunded_cents, coalesce(r.counted, 0))), 0)
                   + coalesce((SELECT sum(amount_cents) FROM crm.refunds
                                WHERE invoice_id = p_invoice_id AND payment_id IS NULL
                                  AND status IN ('pending', 'requires_action', 'succeeded')), 0) AS total
              FROM crm.payments p
              LEFT JOIN (SELECT payment_id, sum(amount_cents) AS counted FROM crm.refunds
                          WHERE invoice_id = p_invoice_id AND status IN ('pending', 'requires_action', 'succeeded')
                          GROUP BY payment_id) r ON r.payment_id = p.id
             WHERE p.invoice_id = p_invoice_id) t
     WHERE i.id = p_invoice_id AND i.amount_refunded_cents IS DISTINCT FROM least(i.amount_paid_cents, t.total);
$$;


-- Upserts one Stripe refund object against a payment; returns true when something changed.
-- A refund first seen failed or canceled, or moving there, takes its amount off the
-- payment's charge floor (Stripe's charge.amount_refunded drops by it too), as of p_at.
CREATE OR REPLACE FUNCTION crm.upsert_refund(p_refund jsonb, p_payment crm.payments, p_event_id text,
                                             p_at timestamptz DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_old crm.refunds;
    v_new_id bigint;
    v_status text := p_refund ->> 'status';
    v_amount bigint := crm.jsonb_cents(p_refund -> 'amount');
    v_txn text := coalesce(p_refund #>> '{balance_transaction,id}', p_refund ->> 'balance_transaction');
BEGIN
    IF v_status NOT IN ('pending', 'requires_action', 'succeeded', 'failed', 'canceled')
       OR v_amount IS NULL OR v_amount <= 0 OR (p_refund ->> 'id') !~ '^(re|pyr)_' THEN
        RETURN false;
    END IF;
    SELECT * INTO v_old FROM crm.refunds WHERE stripe_refund_id = p_refund ->> 'id' FOR UPDATE;
    IF v_old.id IS NULL THEN
        INSERT INTO crm.refunds (invoice_id, payment_id, mode, stripe_refund_id, stripe_charge_id, stripe_event_id,
                                 amount_cents, currency, status, reason, stripe_payment_intent_id,
                                 stripe_balance_transaction_id)
        VALUES (p_payment.invoice_id, p_payment.id, p_payment.mode, p_refund ->> 'id', p_refund ->> 'charge',
                p_event_id, v_amount, coalesce(p_refund ->> 'currency', p_payment.currency), v_status,
                p_refund ->> 'reason', p_refund ->> 'payment_intent', v_txn)
        ON CONFLICT (stripe_refund_id) DO NOTHING
        RETURNING id INTO v_new_id;
        PERFORM crm.write_audit('refund', v_new_id, NULL, v_status, 'stripe_event', p_event_id,
                                jsonb_build_object('invoice_id', p_payment.invoice_id, 'amount_cents', v_amount),
                                p_event_id);
    ELSE
        IF v_txn IS NOT NULL AND v_old.stripe_balance_transaction_id IS NULL THEN
            UPDATE crm.refunds SET stripe_balance_transaction_id = v_txn WHERE id = v_old.id;
        END IF;
        IF NOT crm.refund_status_may_move(v_old.status, v_status) THEN
            RETURN false;
        END IF;
        UPDATE crm.refunds SET status = v_status, amount_cents = v_amount, stripe_event_id = p_event_id
         WHERE id = v_old.id;
        PERFORM crm.write_audit('refund', v_old.id, v_old.status, v_status, 'stripe_event', p_event_id,
                                jsonb_build_object('invoice_id', p_payment.invoice_id, 'amount_cents', v_amount),
                                p_event_id);
    END IF;
    IF v_status IN ('failed', 'canceled') THEN
        UPDATE crm.payments
           SET charge_amount_refunded_cents = greatest(0, charge_amount_refunded_cents - v_amount),
               charge_refunded_as_of = greatest(charge_refunded_as_of, coalesce(p_at, now()))
         WHERE id = p_payment.id;
    END IF;
    RETURN true;
END;
$$;


-- refund.* (object: refund) and charge.refunded (object: charge): linked to the invoice
-- through the payment intent or charge recorded on crm.payments. Unmatched until that
-- payment is known; crm.apply_stripe_invoice_payment then re-applies them.
-- (Disputes, charge.dispute.*, match their payment the same way: lock_stripe_payment, then
-- crm.payments by payment_intent/charge, 'unmatched' otherwise, replayed by the same path.)
CREATE OR REPLACE FUNCTION crm.apply_stripe_refund_event(p_event_id text, p_type text, p_obj jsonb, p_mode text,
                                                         p_created timestamptz DEFAULT NULL)
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
    v_at timestamptz := coalesce(p_created, now());
    v_charge_refunded bigint := CASE WHEN v_is_charge THEN crm.jsonb_cents(p_obj -> 'amount_refunded') END;
BEGIN
    PERFORM crm.lock_stripe_payment(ARRAY[v_intent, v_charge]);
    SELECT * INTO v_payment FROM crm.payments
     WHERE (v_intent IS NOT NULL AND stripe_payment_intent_id = v_intent)
        OR (v_charge IS NOT NULL AND stripe_charge_id = v_charge)
     ORDER BY id LIMIT 1;
    IF v_payment.id IS NULL THEN
        RETURN jsonb_build_object('outcome', 'unmatched',
                                  'detail', 'no CRM payment for ' || coalesce(v_intent, v_charge, '?')
                                            || ' yet: applied when its payment arrives');
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
        -- Real charges carry no refunds.data since API 2022-11-15; an expanded one may.
        FOR v_refund IN SELECT * FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(p_obj #> '{refunds,data}') = 'array' THEN p_obj #> '{refunds,data}'
                     ELSE '[]'::jsonb END)
        LOOP
            v_changed := crm.upsert_refund(v_refund, v_payment, p_event_id, v_at) OR v_changed;
        END LOOP;
        -- The cumulative amount only raises the floor, and only when it is not older than
        -- the last refund failure taken off it.
        UPDATE crm.payments
           SET charge_amount_refunded_cents = v_charge_refunded
         WHERE id = v_payment.id AND v_charge_refunded IS NOT NULL
           AND v_charge_refunded > charge_amount_refunded_cents
           AND (charge_refunded_as_of IS NULL OR v_at >= charge_refunded_as_of);
    ELSE
        v_changed := crm.upsert_refund(p_obj, v_payment, p_event_id, v_at);
    END IF;
    PERFORM crm.refresh_amount_refunded(v_inv.id);
    IF NOT v_changed AND (SELECT amount_refunded_cents FROM crm.invoices WHERE id = v_inv.id)
                         IS DISTINCT FROM v_inv.amount_refunded_cents THEN
        PERFORM crm.write_audit('invoice', v_inv.id, v_inv.status, v_inv.status, 'stripe_event', p_event_id,
                                jsonb_build_object('event_type', p_type, 'amount_refunded_cents',
                                                   (SELECT amount_refunded_cents FROM crm.invoices WHERE id = v_inv.id)),
                                p_event_id);
        v_changed := true;
    END IF;
    RETURN jsonb_build_object(
        'outcome', CASE WHEN v_changed THEN 'applied' ELSE 'ignored' END,
        'invoice_id', v_inv.id, 'job_id', v_inv.job_id, 'from_status', v_inv.status, 'to_status', v_inv.status,
        'detail', CASE WHEN v_changed THEN 'refund recorded' ELSE 'refund already recorded' END);
END;
$$;


-- What a decline looks like to staff: Stripe's message, then its codes.
CREATE OR REPLACE FUNCTION crm.decline_text(p_code text, p_decline_code text, p_message text)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT left(coalesce(nullif(p_message, ''), 'The payment was declined')
                || CASE WHEN coalesce(p_code, p_decline_code) IS NULL THEN ''
                        ELSE ' (' || concat_ws(': ', p_code, nullif(p_decline_code, p_code)) || ')' END, 500);
$$;


-- payment_intent.payment_failed (object: payment_intent): the decline reason Stripe puts on
-- the payment intent (last_payment_error: code, decline_code, message), one row per failed
-- attempt (payment intent + charge) in crm.payment_failures. The invoice is found through
-- the payment intent's link (an InvoicePayment seen by event, by the worker or by
-- reconcile), its payment, else crm.find_invoice_for_payment_intent; unmatched until then.
-- What the failure does to the invoice (a bank debit no longer processing, attention,
-- audit) is crm.apply_stripe_payment_intent_event's (55_bank_disputes.sql) when that finds
-- the invoice too; otherwise this flags it the same way.
CREATE OR REPLACE FUNCTION crm.apply_stripe_payment_failed(p_event_id text, p_obj jsonb, p_mode text,
                                                           p_created timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_intent text := p_obj ->> 'id';
    v_error jsonb := p_obj -> 'last_payment_error';
    v_charge text := coalesce(p_obj #>> '{last_payment_error,charge}', p_obj ->> 'latest_charge', '');
    v_id bigint;
    v_inv crm.invoices;
    v_lock record;
    v_failure_id bigint;
    v_text text;
    v_result jsonb;
BEGIN
    PERFORM crm.lock_stripe_payment(ARRAY[v_intent]);
    SELECT invoice_id INTO v_id FROM crm.payment_intent_links WHERE stripe_payment_intent_id = v_intent;
    IF v_id IS NULL THEN
        v_id := crm.find_invoice_for_payment_intent(p_obj, p_mode);
    END IF;
    v_lock := crm.lock_event_invoice(v_id, p_mode, 'no CRM invoice known for ' || coalesce(v_intent, '?')
                                                 || ' yet: applied when its invoice payment is seen');
    IF v_lock.refusal IS NOT NULL THEN
        RETURN v_lock.refusal;
    END IF;
    v_inv := v_lock.inv;
    IF jsonb_typeof(v_error) = 'object' THEN
        INSERT INTO crm.payment_failures (invoice_id, mode, stripe_payment_intent_id, stripe_charge_id, code,
                                          decline_code, message, stripe_event_id, failed_at)
        VALUES (v_id, p_mode, v_intent, v_charge, v_error ->> 'code', v_error ->> 'decline_code',
                left(v_error ->> 'message', 500), p_event_id, coalesce(p_created, now()))
        ON CONFLICT (stripe_payment_intent_id, stripe_charge_id) DO NOTHING
        RETURNING id INTO v_failure_id;
        UPDATE crm.invoices SET decline_lookup_at = NULL, decline_lookup_attempts = 0
         WHERE id = v_id AND decline_lookup_at IS NOT NULL;
    END IF;

    v_result := crm.apply_stripe_payment_intent_event(p_event_id, 'payment_intent.payment_failed', p_obj, p_mode,
                                                      p_created);
    IF v_result ->> 'outcome' IS DISTINCT FROM 'unmatched' THEN
        RETURN v_result || CASE WHEN v_failure_id IS NOT NULL
            THEN jsonb_build_object('outcome', 'applied', 'detail', 'decline recorded; ' || coalesce(v_result ->> 'detail', ''))
            ELSE '{}'::jsonb END;
    END IF;

    -- Found through its link only: flag the invoice as crm.apply_stripe_payment_intent_event would.
    IF v_failure_id IS NULL THEN
        RETURN jsonb_build_object('outcome', 'ignored', 'invoice_id', v_id, 'detail', 'decline already recorded');
    END IF;
    v_text := crm.decline_text(v_error ->> 'code', v_error ->> 'decline_code', v_error ->> 'message');
    UPDATE crm.invoices
       SET last_payment_error = v_text,
           attention = CASE WHEN status IN ('open', 'uncollectible', 'sending') THEN 'payment_failed' ELSE attention END,
           attention_detail = CASE WHEN status IN ('open', 'uncollectible', 'sending') THEN v_text
                                   ELSE attention_detail END
     WHERE id = v_id;
    PERFORM crm.write_invoice_audit(v_id, v_inv.status, v_inv.status, p_event_id, 'payment_intent.payment_failed',
                                    jsonb_build_object('payment_error', v_text, 'code', v_error ->> 'code',
                                                       'decline_code', v_error ->> 'decline_code',
                                                       'payment_intent', v_intent));
    RETURN jsonb_build_object('outcome', 'applied', 'invoice_id', v_id, 'job_id', v_inv.job_id,
                              'from_status', v_inv.status, 'to_status', v_inv.status,
                              'detail', 'payment declined: ' || v_text);
END;
$$;
