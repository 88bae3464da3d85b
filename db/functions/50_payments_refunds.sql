-- Payments and refunds: invoice_payment.paid links a payment to its payment intent and
-- charge; refund.* and charge.refunded are matched through them; refunded totals are
-- recomputed from the refund rows.

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
