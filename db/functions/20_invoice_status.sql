-- Invoice status rules shared by every event handler: which moves are allowed (forward
-- only), the audit row of a change, which CRM invoice a Stripe invoice is, and recorded
-- payments brought up to what Stripe says is paid.

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


CREATE OR REPLACE FUNCTION crm.write_invoice_audit(p_invoice_id bigint, p_from text, p_to text, p_event_id text,
                                                   p_type text, p_detail jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM crm.write_audit('invoice', p_invoice_id, p_from, p_to, 'stripe_event', p_event_id,
                            jsonb_build_object('event_type', p_type) || p_detail, p_event_id);
END;
$$;


-- Invariant 5: an event applies only to an invoice sent in the event's mode. NULL when it
-- may; otherwise the 'rejected' outcome every handler answers.
CREATE OR REPLACE FUNCTION crm.mode_refusal(p_inv crm.invoices, p_mode text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_inv.mode IS DISTINCT FROM p_mode THEN
        RETURN jsonb_build_object('outcome', 'rejected', 'invoice_id', p_inv.id,
                                  'detail', format('event is %s mode, invoice was sent in %s mode', p_mode,
                                                   coalesce(p_inv.mode, 'no')));
    END IF;
    RETURN NULL;
END;
$$;


-- Every Stripe event handler that names one invoice starts here: the invoice row locked for
-- this transaction, or the outcome to answer instead: 'unmatched' (p_unmatched says what
-- was looked for) when there is no such invoice, 'rejected' when it was sent in the other
-- mode (crm.mode_refusal).
CREATE OR REPLACE FUNCTION crm.lock_event_invoice(p_id bigint, p_mode text, p_unmatched text,
                                                  OUT inv crm.invoices, OUT refusal jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_id IS NULL THEN
        refusal := jsonb_build_object('outcome', 'unmatched', 'detail', p_unmatched);
        RETURN;
    END IF;
    SELECT * INTO inv FROM crm.invoices WHERE id = p_id FOR UPDATE;
    refusal := crm.mode_refusal(inv, p_mode);
END;
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


-- Brings recorded payments up to the amount Stripe says is paid. A rise with no
-- InvoicePayment seen yet is recorded under the event id; the InvoicePayment event
-- later takes its place (crm.apply_stripe_invoice_payment), so the sum never double counts.
-- The caller raises invoices.amount_paid_cents (crm.apply_stripe_invoice_event, in the
-- same UPDATE as any status change: one row version per event, not two).
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
    RETURN greatest(p_amount_paid - v_sum, 0);
END;
$$;
