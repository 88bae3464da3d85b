-- Every cent, not only Paid (issue 12, refunds/fees/declines part).
--
-- payments: the balance transaction a fee and net come from, when the sidecar's payment
-- details worker should (re)try fetching it, and the charge's cumulative amount_refunded
-- as last reported by charge.refunded (a floor for the refunded total, never a ceiling).
ALTER TABLE crm.payments
    ADD COLUMN stripe_balance_transaction_id text,
    ADD COLUMN available_on                  timestamptz,
    ADD COLUMN fee_attempts                  integer NOT NULL DEFAULT 0 CHECK (fee_attempts >= 0),
    ADD COLUMN fee_next_attempt_at           timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN fee_error                     text,
    ADD COLUMN charge_amount_refunded_cents  bigint NOT NULL DEFAULT 0 CHECK (charge_amount_refunded_cents >= 0),
    ADD COLUMN charge_refunded_as_of         timestamptz;
CREATE INDEX payments_fee_due_idx ON crm.payments (fee_next_attempt_at) WHERE fee_cents IS NULL;

-- refunds: their own balance transaction (negative amount; fee usually 0) and payment intent.
ALTER TABLE crm.refunds
    ADD COLUMN stripe_payment_intent_id      text,
    ADD COLUMN stripe_balance_transaction_id text,
    ADD COLUMN fee_cents                     bigint CHECK (fee_cents >= 0),
    ADD COLUMN net_cents                     bigint,
    ADD COLUMN fee_attempts                  integer NOT NULL DEFAULT 0 CHECK (fee_attempts >= 0),
    ADD COLUMN fee_next_attempt_at           timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN fee_error                     text;
CREATE INDEX refunds_fee_due_idx ON crm.refunds (fee_next_attempt_at) WHERE fee_cents IS NULL AND status = 'succeeded';

-- Which CRM invoice a payment intent pays (from InvoicePayment objects, whatever their
-- status): how a decline (payment_intent.payment_failed) finds its invoice.
CREATE TABLE crm.payment_intent_links (
    stripe_payment_intent_id    text PRIMARY KEY CHECK (stripe_payment_intent_id LIKE 'pi\_%'),
    invoice_id                  bigint NOT NULL REFERENCES crm.invoices (id),
    mode                        text NOT NULL CHECK (mode IN ('test', 'live')),
    stripe_invoice_payment_id   text,
    created_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_intent_links_invoice_idx ON crm.payment_intent_links (invoice_id);

-- One row per declined payment attempt: the reason Stripe gave on the payment intent.
CREATE TABLE crm.payment_failures (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id                  bigint NOT NULL REFERENCES crm.invoices (id),
    mode                        text NOT NULL CHECK (mode IN ('test', 'live')),
    stripe_payment_intent_id    text NOT NULL,
    -- last_payment_error.charge; '' when Stripe named none (so the pair stays unique)
    stripe_charge_id            text NOT NULL DEFAULT '',
    code                        text,
    decline_code                text,
    message                     text,
    stripe_event_id             text,
    failed_at                   timestamptz NOT NULL,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stripe_payment_intent_id, stripe_charge_id)
);
CREATE INDEX payment_failures_invoice_idx ON crm.payment_failures (invoice_id, failed_at DESC);

-- invoice.payment_failed carries no reason: the worker looks it up on the payment intent.
ALTER TABLE crm.invoices
    ADD COLUMN decline_lookup_at       timestamptz,
    ADD COLUMN decline_lookup_attempts integer NOT NULL DEFAULT 0 CHECK (decline_lookup_attempts >= 0);
CREATE INDEX invoices_decline_lookup_idx ON crm.invoices (decline_lookup_at) WHERE decline_lookup_at IS NOT NULL;

-- Ledger: unmatched events are re-applied once what they name is known ('replayed_at'),
-- and the worker may record what it fetched from Stripe.
ALTER TABLE crm.stripe_events
    ADD COLUMN replayed_at timestamptz;
ALTER TABLE crm.stripe_events DROP CONSTRAINT stripe_events_source_check;
ALTER TABLE crm.stripe_events ADD CONSTRAINT stripe_events_source_check
    CHECK (source IN ('webhook', 'reconcile', 'worker'));
CREATE INDEX stripe_events_unmatched_idx ON crm.stripe_events (mode, stripe_created_at) WHERE outcome = 'unmatched';

ALTER TABLE crm.payment_intent_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.payment_failures ENABLE ROW LEVEL SECURITY;

-- Signatures that gained a parameter (the event's time): the old ones go, db/functions/
-- defines the new ones (CREATE OR REPLACE cannot add a parameter in place).
DROP FUNCTION IF EXISTS crm.upsert_refund(jsonb, crm.payments, text);
DROP FUNCTION IF EXISTS crm.apply_stripe_refund_event(text, text, jsonb, text);
