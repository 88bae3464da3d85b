-- Money beyond Paid: bank debits on their way, disputes (chargebacks), and reminders that
-- follow the amount still due. Behaviour is in db/functions/55_bank_disputes.sql.
--
-- 'processing' and 'disputed' are derived like 'overdue', never stored in invoices.status:
-- an open invoice with a pending bank debit is Processing (processing_payment_intent_id
-- set), an invoice with an open dispute on one of its payments is Disputed.

-- The bank debit (ACH) Stripe says is on its way: set by payment_intent.processing,
-- cleared when the payment is recorded, the invoice leaves 'open', or the debit fails.
ALTER TABLE crm.invoices
    ADD COLUMN processing_payment_intent_id text CHECK (processing_payment_intent_id LIKE 'pi\_%'),
    ADD COLUMN processing_amount_cents      bigint CHECK (processing_amount_cents > 0),
    ADD COLUMN processing_since             timestamptz,
    ADD CONSTRAINT invoices_processing_whole CHECK (
        (processing_payment_intent_id IS NULL) = (processing_since IS NULL));

-- One row per Stripe dispute. invoice_id and payment_id are NULL while the disputed charge
-- is not known (the event is then also recorded 'unmatched' in crm.stripe_events); a
-- replay of the event links them.
CREATE TABLE crm.disputes (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id                  bigint REFERENCES crm.invoices (id),
    payment_id                  bigint REFERENCES crm.payments (id),
    mode                        text NOT NULL CHECK (mode IN ('test', 'live')),
    stripe_dispute_id           text NOT NULL UNIQUE CHECK (stripe_dispute_id LIKE 'dp\_%' OR stripe_dispute_id LIKE 'du\_%'),
    stripe_charge_id            text,
    stripe_payment_intent_id    text,
    stripe_event_id             text,
    amount_cents                bigint NOT NULL CHECK (amount_cents >= 0),
    currency                    text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    reason                      text,
    -- Stripe's dispute statuses; won, lost, warning_closed and prevented are final.
    status                      text NOT NULL CHECK (status IN ('warning_needs_response', 'warning_under_review',
                                                                'warning_closed', 'needs_response', 'under_review',
                                                                'won', 'lost', 'prevented')),
    evidence_due_by             timestamptz,
    opened_at                   timestamptz NOT NULL DEFAULT now(),
    closed_at                   timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    CHECK ((closed_at IS NOT NULL) = (status IN ('won', 'lost', 'warning_closed', 'prevented'))),
    CHECK ((invoice_id IS NULL) = (payment_id IS NULL))
);
CREATE INDEX disputes_invoice_idx ON crm.disputes (invoice_id);
CREATE INDEX disputes_open_idx ON crm.disputes (evidence_due_by) WHERE closed_at IS NULL;
CREATE INDEX disputes_lost_closed_idx ON crm.disputes (closed_at) INCLUDE (amount_cents) WHERE status = 'lost';
ALTER TABLE crm.disputes ENABLE ROW LEVEL SECURITY;

-- A reminder handed to Resend with an amount that is no longer right (a partial payment),
-- or while a bank debit is on its way, is cancelled there and replaced by a new row for the
-- same slot (a new id, so a new Resend idempotency key and a fresh request). revision
-- numbers the rows of one slot.
ALTER TABLE crm.reminders ADD COLUMN revision smallint NOT NULL DEFAULT 0 CHECK (revision >= 0);
ALTER TABLE crm.reminders DROP CONSTRAINT reminders_invoice_id_offset_days_key;
ALTER TABLE crm.reminders ADD CONSTRAINT reminders_invoice_offset_revision_key UNIQUE (invoice_id, offset_days, revision);
ALTER TABLE crm.reminders DROP CONSTRAINT reminders_cancel_reason_check;
ALTER TABLE crm.reminders ADD CONSTRAINT reminders_cancel_reason_check
    CHECK (cancel_reason IN ('paid', 'void', 'uncollectible', 'superseded', 'opted_out', 'manual',
                             'amount_changed', 'payment_processing'));
