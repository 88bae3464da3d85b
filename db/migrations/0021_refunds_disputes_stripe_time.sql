-- Refunds and disputes as Stripe has them (issue 20): a refund's own failure reason, the
-- owner's refund requests (the idempotency record made before the call to Stripe), the
-- dispute fee in net, and Stripe's clock for the days money went back.
-- Behaviour is in db/functions/50_payments_refunds.sql, 55_bank_disputes.sql and
-- 90_collections_daily.sql.

-- Why a refund failed or was canceled (Stripe's failure_reason: declined,
-- expired_or_canceled_card, insufficient_funds, ...).
ALTER TABLE crm.refunds ADD COLUMN failure_reason text;
COMMENT ON COLUMN crm.refunds.created_at IS 'When Stripe made the refund (its created), not when the CRM heard of it';

-- What Stripe charged for the dispute (the sum of its balance transactions' fees), from the
-- event that listed the most of them (a late event with fewer changes nothing); the roll-up
-- counts it on the day the dispute was opened (its own created time, opened_at).
ALTER TABLE crm.disputes ADD COLUMN fee_cents bigint NOT NULL DEFAULT 0,
                         ADD COLUMN balance_transactions integer NOT NULL DEFAULT 0 CHECK (balance_transactions >= 0);
COMMENT ON COLUMN crm.disputes.closed_at IS 'When Stripe closed the dispute (the closing event''s created)';
ALTER TABLE crm.collections_daily ADD COLUMN dispute_fee_cents bigint NOT NULL DEFAULT 0;
-- Existing days are rebuilt with the new column at the next refresh.
DELETE FROM crm.collections_daily_state;

-- An owner's refund, one row per Stripe refund it asks for, written before the call: the row's
-- key is the call's Idempotency-Key, so a second press (or a retry after a crash) finds it and
-- Stripe replays the first answer instead of refunding twice.
CREATE TABLE crm.refund_requests (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key     text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    invoice_id          bigint NOT NULL REFERENCES crm.invoices (id),
    payment_id          bigint NOT NULL REFERENCES crm.payments (id),
    mode                text NOT NULL CHECK (mode IN ('test', 'live')),
    amount_cents        bigint NOT NULL CHECK (amount_cents > 0),
    reason              text NOT NULL CHECK (reason IN ('duplicate', 'fraudulent', 'requested_by_customer')),
    note                text,
    requested_by        text NOT NULL,
    status              text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'sent', 'refused')),
    stripe_refund_id    text,
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refund_requests_invoice_idx ON crm.refund_requests (invoice_id);
ALTER TABLE crm.refund_requests ENABLE ROW LEVEL SECURITY;

-- Disputes now carry the event's time (closed_at is Stripe's, not the CRM's).
DROP FUNCTION IF EXISTS crm.apply_stripe_dispute_event(text, text, jsonb, text);
