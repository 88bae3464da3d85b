-- Texts (issue 23): customers' phones in E.164 with a channel preference and a texts-off flag
-- (Twilio error 21610: the customer replied STOP), and the texts themselves with their Twilio
-- status callbacks. Behaviour (recording a send, applying a callback) is in
-- db/functions/75_text_messages.sql.

-- Phones already stored in a US shape (10 digits, or 11 starting with 1) become E.164; what
-- cannot be read that way is kept aside in phone_unparsed for staff to fix, so the E.164 rule
-- holds for every row from here on.
ALTER TABLE crm.customers
    ADD COLUMN phone_unparsed   text,
    ADD COLUMN channel          text NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'text', 'both')),
    ADD COLUMN texts_off        boolean NOT NULL DEFAULT false,
    ADD COLUMN texts_off_at     timestamptz,
    ADD COLUMN texts_off_reason text;
UPDATE crm.customers
   SET phone = CASE WHEN length(regexp_replace(phone, '\D', '', 'g')) = 10
                    THEN '+1' || regexp_replace(phone, '\D', '', 'g')
                    WHEN length(regexp_replace(phone, '\D', '', 'g')) = 11 AND regexp_replace(phone, '\D', '', 'g') LIKE '1%'
                    THEN '+' || regexp_replace(phone, '\D', '', 'g') END,
       phone_unparsed = CASE WHEN length(regexp_replace(phone, '\D', '', 'g')) = 10
                              OR (length(regexp_replace(phone, '\D', '', 'g')) = 11
                                  AND regexp_replace(phone, '\D', '', 'g') LIKE '1%') THEN NULL ELSE phone END
 WHERE phone IS NOT NULL AND phone !~ '^\+[1-9][0-9]{1,14}$';
ALTER TABLE crm.customers ADD CONSTRAINT customers_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{1,14}$');

-- One row per text we asked Twilio to send, made before the call (status 'sending'), so a
-- double tap or a retry finds it; the SID is recorded when Twilio answers. A text-to-pay
-- ('pay_link'), a Settings test ('test'), or a reminder scheduled at Twilio ('reminder').
CREATE TABLE crm.text_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('pay_link', 'test', 'reminder')),
    invoice_id      bigint REFERENCES crm.invoices (id),
    customer_id     bigint REFERENCES crm.customers (id),
    -- A reminder by text: the reminder slot it is for, scheduled at Twilio (send_at).
    reminder_id     bigint REFERENCES crm.reminders (id),
    -- 'requested': stop it at Twilio (Status=canceled); 'done', or 'too_late' when it had gone out.
    twilio_cancel   text CHECK (twilio_cancel IN ('requested', 'done', 'too_late')),
    cancel_reason   text,
    to_number       text NOT NULL CHECK (to_number ~ '^\+[1-9][0-9]{1,14}$'),
    body            text NOT NULL CHECK (body <> ''),
    sid             text UNIQUE CHECK (sid ~ '^(SM|MM)[0-9a-fA-F]{32}$'),
    status          text NOT NULL DEFAULT 'sending'
                    CHECK (status IN ('sending', 'accepted', 'queued', 'scheduled', 'sent', 'delivered',
                                      'undelivered', 'failed', 'canceled', 'read')),
    send_at         timestamptz,
    error_code      integer,
    error_message   text,
    requested_by    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    delivered_at    timestamptz,
    CHECK (kind = 'test' OR invoice_id IS NOT NULL),
    CHECK ((kind = 'reminder') = (reminder_id IS NOT NULL))
);
-- One live text per reminder slot (a cancelled one may be followed by a new one).
CREATE UNIQUE INDEX text_messages_reminder_idx ON crm.text_messages (reminder_id) WHERE status <> 'canceled';
CREATE INDEX text_messages_cancel_idx ON crm.text_messages (id) WHERE twilio_cancel = 'requested';
CREATE INDEX text_messages_invoice_idx ON crm.text_messages (invoice_id, created_at DESC);
CREATE INDEX text_messages_customer_idx ON crm.text_messages (customer_id, created_at DESC);

-- Every status callback, once: Twilio's (SID, status) pair is the dedup key (a replay of the
-- same callback changes nothing). A callback for a SID we do not know is kept, unmatched.
CREATE TABLE crm.text_message_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text_message_id bigint REFERENCES crm.text_messages (id),
    sid             text NOT NULL,
    -- Twilio's Message status enum.
    status          text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'delivered', 'undelivered',
                                                    'receiving', 'received', 'accepted', 'scheduled', 'read',
                                                    'partially_delivered', 'canceled')),
    error_code      integer,
    -- The error code in words (crm/texts/errors.py), for the timeline.
    detail          text,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sid, status)
);
CREATE INDEX text_message_events_message_idx ON crm.text_message_events (text_message_id, received_at);

ALTER TABLE crm.audit_log DROP CONSTRAINT audit_log_entity_check;
ALTER TABLE crm.audit_log ADD CONSTRAINT audit_log_entity_check
    CHECK (entity IN ('invoice', 'job', 'customer', 'reminder', 'email', 'user', 'settings', 'payment',
                      'refund', 'text'));
ALTER TABLE crm.audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE crm.audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('user', 'stripe_event', 'resend_event', 'system', 'twilio_event'));

ALTER TABLE crm.text_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE crm.text_message_events ENABLE ROW LEVEL SECURITY;
