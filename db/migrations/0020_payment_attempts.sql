-- Bank debits follow Stripe's order, not the delivery's (issue 20). Stripe reuses an
-- invoice's default payment intent for every attempt, one charge each, so Processing is
-- decided per attempt: one row per (payment intent, charge), moving only forward
-- (processing -> failed | succeeded), dated by Stripe's event time. The invoice's
-- processing_* columns hold the current attempt, recomputed from these rows
-- (crm.refresh_invoice_processing, db/functions/55_bank_disputes.sql).
CREATE TABLE crm.payment_attempts (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id                  bigint NOT NULL REFERENCES crm.invoices (id),
    mode                        text NOT NULL CHECK (mode IN ('test', 'live')),
    stripe_payment_intent_id    text NOT NULL CHECK (stripe_payment_intent_id LIKE 'pi\_%'),
    -- the attempt's charge (latest_charge, last_payment_error.charge); '' when Stripe named none
    stripe_charge_id            text NOT NULL DEFAULT '',
    status                      text NOT NULL CHECK (status IN ('processing', 'failed', 'succeeded')),
    amount_cents                bigint CHECK (amount_cents > 0),
    -- Stripe's `created` of the first event seen for the attempt, and of the one that set its status
    started_at                  timestamptz NOT NULL,
    status_at                   timestamptz NOT NULL,
    stripe_event_id             text,
    UNIQUE (stripe_payment_intent_id, stripe_charge_id)
);
CREATE INDEX payment_attempts_invoice_idx ON crm.payment_attempts (invoice_id, started_at DESC);
ALTER TABLE crm.payment_attempts ENABLE ROW LEVEL SECURITY;

ALTER TABLE crm.invoices ADD COLUMN processing_charge_id text;

-- Debits processing when this migration runs: their attempt, charge unknown ('').
INSERT INTO crm.payment_attempts (invoice_id, mode, stripe_payment_intent_id, status, amount_cents, started_at,
                                  status_at)
SELECT id, mode, processing_payment_intent_id, 'processing', processing_amount_cents, processing_since,
       processing_since
  FROM crm.invoices WHERE processing_payment_intent_id IS NOT NULL;

-- The handler gained the event's time (CREATE OR REPLACE cannot add a parameter in place).
DROP FUNCTION IF EXISTS crm.apply_stripe_payment_intent_event(text, text, jsonb, text);
