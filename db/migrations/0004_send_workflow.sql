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
