-- The CRM's tables, in the private schema crm. Money is bigint minor units (cents),
-- times are timestamptz, every status has a CHECK, every Stripe and Resend id is unique.
-- Row level security is enabled on every table with no policies: Supabase's anon and
-- authenticated roles see nothing; our own connection owns the tables and bypasses it.

CREATE SCHEMA IF NOT EXISTS crm;
REVOKE ALL ON SCHEMA crm FROM PUBLIC;

-- Touches updated_at on every UPDATE, so the column cannot be forgotten.
CREATE OR REPLACE FUNCTION crm.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

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
    FOREACH t IN ARRAY ARRAY['app_users', 'customers', 'jobs', 'invoices', 'refunds', 'reminders',
                             'email_messages']
    LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON crm.%I FOR EACH ROW EXECUTE FUNCTION crm.touch_updated_at()',
                       t || '_touch', t);
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
