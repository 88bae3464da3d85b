-- Issue 13 (workflow edge cases): what the Send and the reminder dispatcher must remember
-- to stay in step with data that changed after they first talked to Stripe or Resend.

-- What the Stripe customer was last given (sha256 of name and email, as in its idempotency
-- key), per mode: a Send whose CRM customer differs updates the Stripe customer first.
-- NULL (customers created before this migration) means unknown: the next Send updates once.
ALTER TABLE crm.customers
    ADD COLUMN stripe_customer_digest_test text,
    ADD COLUMN stripe_customer_digest_live text;

-- A reminder's stored Resend request re-rendered at hand-off (the amount due or the address
-- changed since it was stored): the new request goes out under a new idempotency key
-- (`revision` numbers them), and the replaced one is kept here until the dispatcher has made
-- sure it is not waiting at Resend (replayed under its own key to learn its id, and
-- cancelled), so a crash in between loses nothing.
ALTER TABLE crm.email_messages
    ADD COLUMN revision integer NOT NULL DEFAULT 0 CHECK (revision >= 0),
    ADD COLUMN superseded_request jsonb,
    ADD COLUMN superseded_key text,
    ADD COLUMN superseded_scheduled_at timestamptz,
    ADD COLUMN superseded_stored_at timestamptz,
    ADD CHECK ((superseded_request IS NULL) = (superseded_key IS NULL));
