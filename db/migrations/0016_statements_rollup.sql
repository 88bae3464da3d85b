-- The owner's first week (issue 14): customer statements, demo invoices marked as such,
-- and the Collections page's daily roll-up. Behaviour (the triggers that record changes,
-- the refresh) is in db/functions/90_collections_daily.sql.

-- Statements: one email listing a customer's open invoices. It belongs to the customer,
-- not to one invoice, so email_messages gains the customer it was sent to.
ALTER TABLE crm.email_messages ADD COLUMN customer_id bigint REFERENCES crm.customers (id);
ALTER TABLE crm.email_messages DROP CONSTRAINT email_messages_kind_check;
ALTER TABLE crm.email_messages ADD CONSTRAINT email_messages_kind_check
    CHECK (kind IN ('invoice', 'reminder', 'test', 'statement'));
ALTER TABLE crm.email_messages ADD CONSTRAINT email_messages_statement_customer
    CHECK (kind <> 'statement' OR customer_id IS NOT NULL);
CREATE INDEX email_messages_customer_idx ON crm.email_messages (customer_id, created_at DESC)
    WHERE customer_id IS NOT NULL;

-- The demo business (ops/seed.py) never existed at Stripe: reconcile must not ask Stripe
-- about its invoices (a 404 per invoice at every `make run`). Databases seeded before this
-- migration are recognised by the seed's Stripe ids.
ALTER TABLE crm.invoices ADD COLUMN demo boolean NOT NULL DEFAULT false;
UPDATE crm.invoices SET demo = true WHERE stripe_invoice_id LIKE 'in\_demo\_%';

-- Collections roll-up: one row per local day of the business's time zone (`tz`), so the
-- page's windowed charts read ~200 rows instead of every invoice of 26 weeks.
--   by send day: invoices sent (not void), their amount, how many were paid the same local
--     day and within an hour of sending, and the email funnel (delivered, opened, clicked, paid);
--   by payment day: payments, gross, fees, payments whose fee is not known yet (and disputes
--     lost that day, refunds made that day and their fees: money going back);
--     invoices paid, by time-to-pay bucket (the
--     bounds of db/queries_collections.TIME_TO_PAY_BOUNDS);
--   by reminder day: reminders sent, invoices whose first reminder went out that day, and
--     how many of those were paid after it.
CREATE TABLE crm.collections_daily (
    day                 date PRIMARY KEY,
    tz                  text NOT NULL,
    sent_invoices       integer NOT NULL DEFAULT 0,
    sent_cents          bigint NOT NULL DEFAULT 0,
    paid_same_day       integer NOT NULL DEFAULT 0,
    paid_within_hour    integer NOT NULL DEFAULT 0,
    funnel_delivered    integer NOT NULL DEFAULT 0,
    funnel_opened       integer NOT NULL DEFAULT 0,
    funnel_clicked      integer NOT NULL DEFAULT 0,
    funnel_paid         integer NOT NULL DEFAULT 0,
    payments            integer NOT NULL DEFAULT 0,
    collected_cents     bigint NOT NULL DEFAULT 0,
    fee_cents           bigint NOT NULL DEFAULT 0,
    disputes_lost_cents bigint NOT NULL DEFAULT 0,
    fees_pending        integer NOT NULL DEFAULT 0,
    refunds             integer NOT NULL DEFAULT 0,
    refunded_cents      bigint NOT NULL DEFAULT 0,
    refund_fee_cents    bigint NOT NULL DEFAULT 0,
    paid_invoices       integer NOT NULL DEFAULT 0,
    time_to_pay_buckets integer[] NOT NULL DEFAULT '{}',
    reminders_sent      integer NOT NULL DEFAULT 0,
    first_reminded      integer NOT NULL DEFAULT 0,
    paid_after_first    integer NOT NULL DEFAULT 0,
    refreshed_at        timestamptz NOT NULL DEFAULT now()
);

-- The exact median time to pay of the invoices paid in each local week (Monday), kept with
-- the days: a refresh recomputes the weeks of the days that changed (a median does not add
-- up from days).
CREATE TABLE crm.collections_weekly (
    week            date PRIMARY KEY,
    tz              text NOT NULL,
    median_s        float8,
    invoices        integer NOT NULL DEFAULT 0,
    refreshed_at    timestamptz NOT NULL DEFAULT now()
);

-- The time zone the roll-up was built for (one row). Another zone, or no row: rebuild.
CREATE TABLE crm.collections_daily_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tz          text NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT now()
);

-- What changed since the last refresh: the times (sent_at, paid_at, old and new) whose
-- local days must be recomputed. Plain inserts (no key), so concurrent webhooks never wait
-- on each other here; a refresh deletes the rows it has consumed.
CREATE TABLE crm.collections_changes (
    at          timestamptz NOT NULL
);

ALTER TABLE crm.collections_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.collections_weekly ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.collections_daily_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.collections_changes ENABLE ROW LEVEL SECURITY;
