-- Dashboard sessions that survive a browser reload, and go-live test data kept apart (issue 22).
--
-- The browser holds an opaque random token in an httpOnly cookie; only its SHA-256 is stored,
-- so a copy of this table opens no session. A login first makes a one-time code (also stored
-- hashed, valid for a minute) that the browser trades for the cookie at /auth/start, so the
-- token itself never travels through a URL or the app's websocket. Logging out ends the row at
-- once (every tab, every copy of the cookie); a disabled account or a changed password or role
-- ends it by the fingerprint check (crm/users/auth.py) on the next click.
CREATE TABLE crm.dashboard_sessions (
    id                bigserial PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES crm.app_users (id) ON DELETE CASCADE,
    fingerprint       text NOT NULL,
    code_hash         bytea UNIQUE,
    code_expires_at   timestamptz,
    token_hash        bytea UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    ended_at          timestamptz,
    CHECK (code_hash IS NULL OR code_expires_at IS NOT NULL)
);
CREATE INDEX dashboard_sessions_user_idx ON crm.dashboard_sessions (user_id) WHERE ended_at IS NULL;
ALTER TABLE crm.dashboard_sessions ENABLE ROW LEVEL SECURITY;

-- The go-live test customer (crm/golive.py step 4) and everything of theirs are kept apart:
-- out of the Invoices, Jobs and Customers lists and the tiles, and out of the accounting export.
ALTER TABLE crm.customers ADD COLUMN golive_test boolean NOT NULL DEFAULT false;
UPDATE crm.customers SET golive_test = true WHERE name LIKE 'Go-live test%';
