-- Baseline: the schema that migrations 0001-0011 built, folded into one file (tables,
-- columns, constraints, indexes, row level security, seed rows), without behaviour.
-- Functions, trigger functions and triggers live in db/functions/ (one current definition
-- each, re-applied by the migrator when a file changes).
--
-- A database that applied the old 0001-0011 is recognised by db/migrate.py and carries on
-- from here without running this file (Flyway's baseline). Tables change through new
-- numbered migrations after this one; never edit this file.
--
-- Sections keep the old migrations' numbers and comments, so `git log` of the old files
-- still explains each decision.
-- The CRM's tables, in the private schema crm. Money is bigint minor units (cents),
-- times are timestamptz, every status has a CHECK, every Stripe and Resend id is unique.
-- Row level security is enabled on every table with no policies: Supabase's anon and
-- authenticated roles see nothing; our own connection owns the tables and bypasses it.

-- The runner (db/migrate.py) has created the schema when it was missing: CREATE SCHEMA IF
-- NOT EXISTS would demand the right to create schemas even when crm exists, a right an
-- application role that owns only crm (Supabase-style least privilege) does not have.
REVOKE ALL ON SCHEMA crm FROM PUBLIC;

-- People who log in to the dashboard.
CREATE TABLE crm.app_users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    name            text NOT NULL DEFAULT '',
    role            text NOT NULL CHECK (role IN ('owner', 'staff')),
    password_hash   text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    active          boolean NOT NULL DEFAULT true,
    failed_logins   integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until    timestamptz,
    last_login_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX app_users_email_key ON crm.app_users (lower(email));

CREATE TABLE crm.customers (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                     text NOT NULL CHECK (btrim(name) <> ''),
    -- NULL allowed: a customer may be entered before we have an address; Send refuses then.
    email                    text CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    phone                    text,
    address                  text,
    reminders_opt_out        boolean NOT NULL DEFAULT false,
    -- Stripe keeps test and live objects apart, so a customer has one id per mode.
    stripe_customer_id_test  text UNIQUE CHECK (stripe_customer_id_test LIKE 'cus\_%'),
    stripe_customer_id_live  text UNIQUE CHECK (stripe_customer_id_live LIKE 'cus\_%'),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_name_idx ON crm.customers (lower(name));

CREATE TABLE crm.jobs (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id             bigint NOT NULL REFERENCES crm.customers (id),
    title                   text NOT NULL CHECK (btrim(title) <> ''),
    description             text NOT NULL DEFAULT '',
    site_address            text,
    status                  text NOT NULL DEFAULT 'scheduled'
                            CHECK (status IN ('scheduled', 'in_progress', 'completed', 'cancelled')),
    scheduled_for           timestamptz,
    completed_at            timestamptz,
    -- Which Stripe event completed the job (NULL when staff completed it by hand).
    completed_by_event_id   text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, customer_id),
    CHECK ((status = 'completed') = (completed_at IS NOT NULL))
);
CREATE INDEX jobs_customer_idx ON crm.jobs (customer_id);
CREATE INDEX jobs_status_idx ON crm.jobs (status, created_at DESC);

-- Invoice status: draft -> sending -> open -> paid | void | uncollectible.
-- 'overdue' is derived (open and past due) and never stored.
CREATE TABLE crm.invoices (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id                  bigint NOT NULL,
    customer_id             bigint NOT NULL,
    kind                    text NOT NULL DEFAULT 'standard' CHECK (kind IN ('standard', 'deposit', 'final')),
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'sending', 'open', 'paid', 'void', 'uncollectible')),
    currency                text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    -- Fixed at send time from the lines (and checked against Stripe's total).
    amount_due_cents        bigint NOT NULL DEFAULT 0 CHECK (amount_due_cents >= 0),
    amount_paid_cents       bigint NOT NULL DEFAULT 0 CHECK (amount_paid_cents >= 0),
    amount_refunded_cents   bigint NOT NULL DEFAULT 0 CHECK (amount_refunded_cents >= 0),
    due_date                date,
    memo                    text NOT NULL DEFAULT '',
    -- Stripe mode the invoice was sent in; events from the other mode never touch it.
    mode                    text CHECK (mode IN ('test', 'live')),
    stripe_invoice_id       text UNIQUE CHECK (stripe_invoice_id LIKE 'in\_%'),
    stripe_invoice_number   text,
    hosted_invoice_url      text,
    invoice_pdf_url         text,
    resend_email_id         text UNIQUE,
    -- Something staff must look at: total mismatch, bounced email, email not sent...
    attention               text CHECK (attention IN ('total_mismatch', 'email_not_sent', 'email_bounced',
                                                      'email_complained', 'payment_failed', 'send_failed')),
    attention_detail        text,
    last_payment_error      text,
    sent_at                 timestamptz,
    paid_at                 timestamptz,
    voided_at               timestamptz,
    created_by              bigint REFERENCES crm.app_users (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (job_id, customer_id) REFERENCES crm.jobs (id, customer_id),
    CHECK (amount_refunded_cents <= amount_paid_cents),
    CHECK (status NOT IN ('open', 'paid') OR (mode IS NOT NULL AND stripe_invoice_id IS NOT NULL)),
    CHECK ((status = 'paid') = (paid_at IS NOT NULL))
);
CREATE INDEX invoices_job_idx ON crm.invoices (job_id);
CREATE INDEX invoices_customer_idx ON crm.invoices (customer_id);
CREATE INDEX invoices_open_due_idx ON crm.invoices (due_date) WHERE status = 'open';
CREATE INDEX invoices_status_created_idx ON crm.invoices (status, created_at DESC);
CREATE INDEX invoices_paid_at_idx ON crm.invoices (paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX invoices_sent_at_idx ON crm.invoices (sent_at) WHERE sent_at IS NOT NULL;

CREATE TABLE crm.invoice_lines (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id          bigint NOT NULL REFERENCES crm.invoices (id) ON DELETE CASCADE,
    position            integer NOT NULL CHECK (position >= 0),
    description         text NOT NULL CHECK (btrim(description) <> ''),
    quantity            integer NOT NULL CHECK (quantity > 0),
    unit_amount_cents   bigint NOT NULL CHECK (unit_amount_cents >= 0),
    amount_cents        bigint GENERATED ALWAYS AS (quantity * unit_amount_cents) STORED,
    stripe_line_id      text UNIQUE,
    UNIQUE (invoice_id, position)
);

-- One row per successful payment Stripe reports against an invoice.
CREATE TABLE crm.payments (
    id                          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id                  bigint NOT NULL REFERENCES crm.invoices (id),
    mode                        text NOT NULL CHECK (mode IN ('test', 'live')),
    -- InvoicePayment id (inpay_...) when known, else the event id that reported it.
    stripe_payment_id           text NOT NULL UNIQUE,
    stripe_payment_intent_id    text UNIQUE,
    stripe_charge_id            text UNIQUE,
    stripe_event_id             text,
    amount_cents                bigint NOT NULL CHECK (amount_cents > 0),
    fee_cents                   bigint CHECK (fee_cents >= 0),
    net_cents                   bigint,
    currency                    text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    paid_at                     timestamptz NOT NULL,
    created_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_invoice_idx ON crm.payments (invoice_id);
CREATE INDEX payments_paid_at_idx ON crm.payments (paid_at);

CREATE TABLE crm.refunds (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id          bigint NOT NULL REFERENCES crm.invoices (id),
    payment_id          bigint REFERENCES crm.payments (id),
    mode                text NOT NULL CHECK (mode IN ('test', 'live')),
    stripe_refund_id    text NOT NULL UNIQUE CHECK (stripe_refund_id LIKE 're\_%' OR stripe_refund_id LIKE 'pyr\_%'),
    stripe_charge_id    text,
    stripe_event_id     text,
    amount_cents        bigint NOT NULL CHECK (amount_cents > 0),
    currency            text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status              text NOT NULL CHECK (status IN ('pending', 'requires_action', 'succeeded', 'failed', 'canceled')),
    reason              text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_invoice_idx ON crm.refunds (invoice_id);

-- The dedup ledger: a Stripe event id is inserted once, in the same transaction that
-- applies it. 'rejected' is a verified event whose mode does not match the invoice.
CREATE TABLE crm.stripe_events (
    id                      text PRIMARY KEY CHECK (id LIKE 'evt\_%'),
    type                    text NOT NULL,
    mode                    text NOT NULL CHECK (mode IN ('test', 'live')),
    api_version             text,
    object_id               text,
    invoice_id              bigint REFERENCES crm.invoices (id),
    outcome                 text NOT NULL CHECK (outcome IN ('applied', 'ignored', 'unmatched', 'rejected')),
    detail                  text,
    source                  text NOT NULL DEFAULT 'webhook' CHECK (source IN ('webhook', 'reconcile')),
    duplicate_deliveries    integer NOT NULL DEFAULT 0 CHECK (duplicate_deliveries >= 0),
    stripe_created_at       timestamptz,
    received_at             timestamptz NOT NULL DEFAULT now(),
    payload                 jsonb NOT NULL
);
CREATE INDEX stripe_events_received_idx ON crm.stripe_events (received_at DESC);
CREATE INDEX stripe_events_invoice_idx ON crm.stripe_events (invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX stripe_events_outcome_idx ON crm.stripe_events (outcome, received_at DESC);

-- Reminder: pending -> queued -> scheduled (handed to Resend with scheduled_at) -> sent,
-- or cancelled from any state before sent.
CREATE TABLE crm.reminders (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id          bigint NOT NULL REFERENCES crm.invoices (id),
    sequence            smallint NOT NULL CHECK (sequence BETWEEN 1 AND 6),
    offset_days         integer NOT NULL CHECK (offset_days BETWEEN -90 AND 365),
    send_at             timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'queued', 'scheduled', 'sent', 'cancelled')),
    resend_id           text UNIQUE,
    cancel_reason       text CHECK (cancel_reason IN ('paid', 'void', 'uncollectible', 'superseded', 'opted_out', 'manual')),
    -- Cancelling one Resend already holds: requested -> done, or too_late if it went out.
    resend_cancel       text CHECK (resend_cancel IN ('requested', 'done', 'too_late')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at     timestamptz,
    last_error          text,
    queued_at           timestamptz,
    handed_off_at       timestamptz,
    sent_at             timestamptz,
    cancelled_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (invoice_id, offset_days),
    CHECK (status <> 'scheduled' OR resend_id IS NOT NULL),
    CHECK (resend_cancel IS NULL OR resend_id IS NOT NULL)
);
CREATE INDEX reminders_pending_due_idx ON crm.reminders (send_at) WHERE status = 'pending';
CREATE INDEX reminders_queued_idx ON crm.reminders (send_at) WHERE status = 'queued';
CREATE INDEX reminders_cancel_idx ON crm.reminders (next_attempt_at) WHERE resend_cancel = 'requested';
CREATE INDEX reminders_invoice_idx ON crm.reminders (invoice_id);

-- Every email we hand to Resend: invoice emails, reminders, test emails.
CREATE TABLE crm.email_messages (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                text NOT NULL CHECK (kind IN ('invoice', 'reminder', 'test')),
    invoice_id          bigint REFERENCES crm.invoices (id),
    reminder_id         bigint UNIQUE REFERENCES crm.reminders (id),
    resend_id           text UNIQUE,
    idempotency_key     text NOT NULL UNIQUE,
    from_address        text NOT NULL,
    to_address          text NOT NULL,
    subject             text NOT NULL,
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'scheduled', 'sent', 'delivered', 'delivery_delayed',
                                          'bounced', 'complained', 'failed', 'suppressed', 'cancelled')),
    scheduled_at        timestamptz,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    first_opened_at     timestamptz,
    first_clicked_at    timestamptz,
    open_count          integer NOT NULL DEFAULT 0 CHECK (open_count >= 0),
    click_count         integer NOT NULL DEFAULT 0 CHECK (click_count >= 0),
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'reminder' OR reminder_id IS NOT NULL)
);
CREATE INDEX email_messages_invoice_idx ON crm.email_messages (invoice_id);
CREATE INDEX email_messages_created_idx ON crm.email_messages (created_at DESC);

-- Resend webhook deliveries, keyed by svix-id (the dedup ledger for Resend).
CREATE TABLE crm.email_events (
    id                  text PRIMARY KEY,
    email_message_id    bigint REFERENCES crm.email_messages (id),
    resend_id           text,
    type                text NOT NULL CHECK (type LIKE 'email.%'),
    occurred_at         timestamptz NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    payload             jsonb NOT NULL
);
CREATE INDEX email_events_message_idx ON crm.email_events (email_message_id, occurred_at);
CREATE INDEX email_events_resend_idx ON crm.email_events (resend_id);

-- One row per external step of a Send via Stripe attempt, with its result.
CREATE TABLE crm.send_steps (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id          bigint NOT NULL REFERENCES crm.invoices (id),
    attempt             integer NOT NULL CHECK (attempt > 0),
    step                text NOT NULL CHECK (step IN ('validate', 'customer', 'invoice', 'lines', 'finalize',
                                                      'email', 'complete')),
    status              text NOT NULL CHECK (status IN ('started', 'succeeded', 'failed', 'skipped')),
    idempotency_key     text,
    external_id         text,
    error               text,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);
CREATE INDEX send_steps_invoice_idx ON crm.send_steps (invoice_id, attempt, id);

-- Owner-edited settings (environment variables of the same name win).
CREATE TABLE crm.settings (
    key         text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_.]*$'),
    value       jsonb NOT NULL,
    updated_by  bigint REFERENCES crm.app_users (id),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys and signing secrets, encrypted by the application with CRM_SECRET_KEY.
-- 'hint' is the masked form shown back (e.g. sk_test_…4242); the plaintext never is.
CREATE TABLE crm.secrets (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_.]*$'),
    ciphertext  bytea NOT NULL,
    hint        text NOT NULL,
    updated_by  bigint REFERENCES crm.app_users (id),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every status change: which entity, from, to, who or what did it, when.
CREATE TABLE crm.audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity          text NOT NULL CHECK (entity IN ('invoice', 'job', 'customer', 'reminder', 'email',
                                                    'user', 'settings', 'payment', 'refund')),
    entity_id       bigint NOT NULL,
    from_status     text,
    to_status       text,
    actor_type      text NOT NULL CHECK (actor_type IN ('user', 'stripe_event', 'resend_event', 'system')),
    -- user email, Stripe event id, svix id, or the name of the system job
    actor           text NOT NULL,
    stripe_event_id text,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_entity_idx ON crm.audit_log (entity, entity_id, created_at);
CREATE INDEX audit_log_event_idx ON crm.audit_log (stripe_event_id) WHERE stripe_event_id IS NOT NULL;

-- Background work the sidecar's workers report on (last run, outcome), for the health panel.
CREATE TABLE crm.worker_runs (
    worker      text PRIMARY KEY,
    last_run_at timestamptz NOT NULL,
    last_ok_at  timestamptz,
    last_error  text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['app_users', 'customers', 'jobs', 'invoices', 'invoice_lines', 'payments',
                             'refunds', 'stripe_events', 'reminders', 'email_messages', 'email_events',
                             'send_steps', 'settings', 'secrets', 'audit_log', 'worker_runs']
    LOOP
        EXECUTE format('ALTER TABLE crm.%I ENABLE ROW LEVEL SECURITY', t);
    END LOOP;
    -- Supabase's API roles: no access to the private schema at all.
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        EXECUTE 'REVOKE ALL ON SCHEMA crm FROM anon';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        EXECUTE 'REVOKE ALL ON SCHEMA crm FROM authenticated';
    END IF;
END;
$$;

-- ---- 0004 send workflow ----
-- Send via Stripe: the lease that keeps two Sends of one invoice apart, and what a
-- resumed Send needs to know about the previous attempt.
--
-- A Send holds the lease (token, owner, until) while it talks to Stripe and Resend and
-- renews it after each step. A second Send is refused while the lease is live; a
-- crashed Send's lease simply runs out, and the next Send resumes from what is stored.

ALTER TABLE crm.invoices
    ADD COLUMN send_lease_token     uuid,
    ADD COLUMN send_lease_owner     text,
    ADD COLUMN send_lease_until     timestamptz,
    -- When the current (or last) Send attempt started; shown in "already being sent since".
    ADD COLUMN send_started_at      timestamptz,
    -- Counts Send attempts; numbers the crm.send_steps rows of each attempt.
    ADD COLUMN send_attempt         integer NOT NULL DEFAULT 0 CHECK (send_attempt >= 0),
    -- Bumped when Stripe rejected the request and the invoice went back to draft: the next
    -- Send starts a fresh Stripe invoice, so its idempotency keys must be new ones.
    ADD COLUMN send_generation      integer NOT NULL DEFAULT 0 CHECK (send_generation >= 0),
    -- Set once add_lines is known to have succeeded for stripe_invoice_id.
    ADD COLUMN stripe_lines_added_at timestamptz,
    -- Stripe's total as finalised (checked against amount_due_cents).
    ADD COLUMN stripe_total_cents   bigint CHECK (stripe_total_cents >= 0),
    -- Bumped when an invoice email must go out under a new idempotency key (Resend refused
    -- the previous payload, or staff deliberately re-sent a delivered email).
    ADD COLUMN email_key_seq        integer NOT NULL DEFAULT 0 CHECK (email_key_seq >= 0),
    -- True when Stripe or Resend was the local sandbox at send time (the UI says so).
    ADD COLUMN sent_via_sandbox     boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT invoices_send_lease_whole CHECK (
        (send_lease_token IS NULL) = (send_lease_until IS NULL)
    );

CREATE INDEX invoices_sending_idx ON crm.invoices (send_lease_until) WHERE status = 'sending';

-- A per-installation id: part of every idempotency key, so two databases (a laptop and
-- production, or two test runs) talking to one Stripe account never share a key.
INSERT INTO crm.settings (key, value)
VALUES ('system.install_id', to_jsonb(replace(gen_random_uuid()::text, '-', '')))
ON CONFLICT (key) DO NOTHING;

-- ---- 0005 reminders ----
-- Overdue reminders and Resend email tracking.
--
-- crm.queue_due_reminders(now) is the one queueing function (pg_cron calls it where pg_cron
-- exists, the sidecar otherwise). The dispatcher claims queued reminders with a lease, hands
-- each to Resend with scheduled_at, and records the hand-off with one function call; the
-- cancel worker records what Resend said about a cancel; crm.apply_resend_event applies one
-- Svix-signed webhook (dedup on svix-id, email status, invoice flag, reminder sent).

-- A dispatcher's claim on a queued reminder: who (token) and until when (lease). A crashed
-- dispatcher's lease runs out and another one re-sends with the same idempotency key.
ALTER TABLE crm.reminders
    ADD COLUMN claim_token   uuid,
    ADD COLUMN claimed_until timestamptz;

-- The exact Resend request of an email, stored before it is sent: a retry after a crash
-- sends the same bytes under the same idempotency key, so Resend replays the first result
-- instead of answering 409 (same key, other payload) when the amount or clock has moved.
ALTER TABLE crm.email_messages ADD COLUMN request jsonb;

CREATE INDEX email_events_orphan_idx ON crm.email_events (resend_id) WHERE email_message_id IS NULL;

-- ---- 0006 dashboard ----
-- Indexes the dashboard's lists and Collections aggregates need at 100,000 invoices.
-- The unfiltered invoice list is ordered by created_at; the others filter first.
CREATE INDEX IF NOT EXISTS invoices_created_idx ON crm.invoices (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS invoices_customer_created_idx ON crm.invoices (customer_id, created_at DESC);
CREATE INDEX IF NOT EXISTS jobs_created_idx ON crm.jobs (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS reminders_sent_idx ON crm.reminders (sent_at) WHERE status = 'sent';
CREATE INDEX IF NOT EXISTS reminders_send_at_idx ON crm.reminders (send_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS email_events_received_idx ON crm.email_events (received_at DESC);
CREATE INDEX IF NOT EXISTS stripe_events_webhook_mode_idx ON crm.stripe_events (mode, received_at DESC)
    WHERE source = 'webhook';

-- ---- 0007 bench indexes ----
-- Found by the benchmarks (bench/, docs/PERFORMANCE.md): crm.queue_due_reminders first
-- cancels pending or queued reminders of invoices no longer open, with no bound on send_at.
-- The partial indexes on send_at cannot serve `status IN ('pending', 'queued')`, so that
-- sweep read the whole reminders table on every five-minute run (3M rows at 1M invoices).
-- This index holds only live reminders, so the sweep reads those and nothing else.
CREATE INDEX IF NOT EXISTS reminders_live_idx ON crm.reminders (id) WHERE status IN ('pending', 'queued');

-- ---- 0008 reconcile ----
-- Reconciliation with Stripe: one row per run of the reconciler (sidecar worker, CLI or the
-- dashboard's button), saying what it listed, applied and repaired, and the checkpoint the
-- next run of the same mode starts from (minus an overlap).
--
-- Runs of one mode are kept apart by a transaction-level advisory lock on
-- crm.reconcile_lock_key(mode) held for the whole run; the events themselves go through
-- crm.apply_stripe_event (p_source 'reconcile'), whose ledger makes a replay harmless.

CREATE TABLE crm.reconcile_runs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mode                text NOT NULL CHECK (mode IN ('test', 'live')),
    -- who asked: 'worker', 'cli', or the dashboard user's email
    actor               text NOT NULL,
    status              text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    -- events listed with created >= listed_since
    listed_since        timestamptz,
    events_seen         integer NOT NULL DEFAULT 0 CHECK (events_seen >= 0),
    events_applied      integer NOT NULL DEFAULT 0 CHECK (events_applied >= 0),
    events_duplicate    integer NOT NULL DEFAULT 0 CHECK (events_duplicate >= 0),
    invoices_checked    integer NOT NULL DEFAULT 0 CHECK (invoices_checked >= 0),
    invoices_repaired   integer NOT NULL DEFAULT 0 CHECK (invoices_repaired >= 0),
    errors              integer NOT NULL DEFAULT 0 CHECK (errors >= 0),
    -- Stripe `created` of the newest listed event every older one of which was applied;
    -- NULL when the listing did not complete (the next run keeps the previous checkpoint).
    checkpoint          timestamptz,
    detail              jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK ((status = 'running') = (finished_at IS NULL))
);

CREATE INDEX reconcile_runs_started_idx ON crm.reconcile_runs (started_at DESC);
CREATE INDEX reconcile_runs_checkpoint_idx ON crm.reconcile_runs (mode, checkpoint DESC) WHERE checkpoint IS NOT NULL;

ALTER TABLE crm.reconcile_runs ENABLE ROW LEVEL SECURITY;

-- ---- 0009 reminder cancel unrecorded ----
-- Cancelling at Resend a reminder whose hand-off was never recorded (design invariant 3).
--
-- The gap: a dispatcher stores the reminder's exact request (email_messages.request), sends
-- it to Resend with scheduled_at and a fixed idempotency key, and dies before recording the
-- Resend id. If the invoice is paid (or voided, or marked uncollectible) before the claim's
-- lease runs out, the reminder is cancelled here while it is still 'queued', nobody knows
-- the Resend id, and the scheduled email would still go out.
--
-- The fix: a queued reminder that is cancelled while a stored request has no Resend id is
-- flagged for the cancel worker like any other (resend_cancel = 'requested'), without an id.
-- The worker replays the stored request under the same key: Resend answers with the first
-- email's id (replayed for 24 h), or, if the first request never reached Resend, creates
-- the scheduled email now; either way the worker records the id and cancels it at once.
-- It never replays a request whose scheduled_at is not safely in the future: that replay
-- could send the email right away. Such a reminder is recorded as 'possibly_sent'.
--
-- The flagging trigger (crm.flag_unrecorded_reminder_cancel) is in db/functions/40_reminders.sql.

ALTER TABLE crm.reminders DROP CONSTRAINT reminders_resend_cancel_check;
ALTER TABLE crm.reminders ADD CONSTRAINT reminders_resend_cancel_check
    CHECK (resend_cancel IN ('requested', 'done', 'too_late', 'possibly_sent'));

-- Was: a cancel at Resend needs a Resend id. Now a cancelled reminder may be flagged before
-- its id is known (the worker finds it by replaying), or end as possibly sent without one.
ALTER TABLE crm.reminders DROP CONSTRAINT reminders_check1;
ALTER TABLE crm.reminders ADD CONSTRAINT reminders_resend_cancel_needs_id CHECK (
    resend_cancel IS NULL OR resend_id IS NOT NULL
    OR (status = 'cancelled' AND resend_cancel IN ('requested', 'possibly_sent')));

-- ---- 0011 collections indexes ----
-- Collections page at 1M invoices, and the reminder queue's cancel sweep (both found by the
-- benchmarks: bench/, docs/PERFORMANCE.md).
--
-- Covering indexes: the page's windowed aggregates (26 weeks of payments and of sent
-- invoices, 90 days of time to pay, the open balances) read their columns from the index
-- alone (index-only scans) instead of visiting ~170k heap pages' worth of rows each time.

-- Time to pay (tiles' medians, distribution, weekly median): paid_at window, sent_at.
CREATE INDEX IF NOT EXISTS invoices_paid_at_sent_idx ON crm.invoices (paid_at) INCLUDE (sent_at)
    WHERE paid_at IS NOT NULL;
-- Invoiced per week, DSO's invoiced in 90 days, the funnel's sent invoices.
CREATE INDEX IF NOT EXISTS invoices_sent_at_amount_idx ON crm.invoices (sent_at)
    INCLUDE (id, status, amount_due_cents, paid_at) WHERE sent_at IS NOT NULL;
-- Collected per week and this month (gross, fees).
CREATE INDEX IF NOT EXISTS payments_paid_at_amount_idx ON crm.payments (paid_at) INCLUDE (amount_cents, fee_cents);
-- Outstanding, overdue and AR aging: the open invoices' balances by due date and customer.
CREATE INDEX IF NOT EXISTS invoices_open_balance_idx ON crm.invoices (due_date)
    INCLUDE (customer_id, amount_due_cents, amount_paid_cents) WHERE status = 'open';
-- The funnel's email stages per invoice email.
CREATE INDEX IF NOT EXISTS email_messages_invoice_stages_idx ON crm.email_messages (invoice_id)
    INCLUDE (delivered_at, first_opened_at, first_clicked_at) WHERE kind = 'invoice';
-- What reminders did: reminders sent in the window and their invoices.
CREATE INDEX IF NOT EXISTS reminders_sent_invoice_idx ON crm.reminders (sent_at) INCLUDE (invoice_id)
    WHERE status = 'sent';

-- The cancel sweep of crm.queue_due_reminders_within (db/functions/40_reminders.sql) is
-- bounded by the hand-off window; this index serves it (live reminders by send_at).
CREATE INDEX IF NOT EXISTS reminders_live_send_at_idx ON crm.reminders (send_at)
    WHERE status IN ('pending', 'queued');
