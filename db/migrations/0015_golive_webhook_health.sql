-- Go live, step by step: what each checklist step found when it was last checked.
-- One row per step; a re-check replaces it. `fingerprint` identifies what was checked (a hash of
-- the key, endpoint or address, never the secret itself): a green step whose fingerprint no
-- longer matches the current settings counts as not checked.
CREATE TABLE crm.golive_checks (
    step            text PRIMARY KEY
                    CHECK (step IN ('stripe_test_key', 'test_webhook', 'resend', 'test_invoice', 'live')),
    ok              boolean NOT NULL,
    detail          text NOT NULL,
    facts           jsonb NOT NULL DEFAULT '{}'::jsonb,
    fingerprint     text NOT NULL DEFAULT '',
    sandboxed       boolean NOT NULL DEFAULT false,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    checked_by      bigint REFERENCES crm.app_users (id),
    actor           text NOT NULL DEFAULT 'dashboard'
);
ALTER TABLE crm.golive_checks ENABLE ROW LEVEL SECURITY;

-- Webhook health: when a delivery of the event arrived by webhook (the first one), whoever recorded
-- the event first. An event first recorded by reconcile whose webhook never came is a missed delivery.
ALTER TABLE crm.stripe_events ADD COLUMN webhook_received_at timestamptz;
UPDATE crm.stripe_events SET webhook_received_at = received_at WHERE source = 'webhook';
CREATE INDEX stripe_events_webhook_health_idx ON crm.stripe_events (mode, source, received_at DESC);
