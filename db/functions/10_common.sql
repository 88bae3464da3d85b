-- Helpers every other file uses: the updated_at trigger (and its triggers on each table
-- with that column) and the JSON readers for Stripe's integer amounts and epoch times.

-- Touches updated_at on every UPDATE, so the column cannot be forgotten.
CREATE OR REPLACE FUNCTION crm.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;


-- A JSON number as bigint, NULL for anything else (absent, null, text, fractions).
CREATE OR REPLACE FUNCTION crm.jsonb_cents(p jsonb)
RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p) = 'number' AND (p #>> '{}') ~ '^-?\d{1,18}$'
                THEN (p #>> '{}')::bigint END;
$$;


CREATE OR REPLACE FUNCTION crm.jsonb_epoch(p jsonb)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_timestamp(crm.jsonb_cents(p));
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['app_users', 'customers', 'jobs', 'invoices', 'refunds', 'reminders',
                             'email_messages']
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE ON crm.%I '
                       'FOR EACH ROW EXECUTE FUNCTION crm.touch_updated_at()', t || '_touch', t);
    END LOOP;
END;
$$;
