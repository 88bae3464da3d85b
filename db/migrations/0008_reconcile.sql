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

-- One key per mode: a test-mode and a live-mode run may overlap, two of one mode may not.
CREATE OR REPLACE FUNCTION crm.reconcile_lock_key(p_mode text)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('crm.reconcile:' || p_mode, 0);
$$;
