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


-- The one INSERT into crm.audit_log: every audit row, from SQL and from the named queries in
-- db/*.py (db/audit.py), is written here. p_at only for loading history (the demo seed).
CREATE OR REPLACE FUNCTION crm.write_audit(p_entity text, p_entity_id bigint, p_from text, p_to text,
                                           p_actor_type text, p_actor text, p_detail jsonb DEFAULT '{}',
                                           p_event_id text DEFAULT NULL, p_at timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO crm.audit_log (entity, entity_id, from_status, to_status, actor_type, actor, stripe_event_id,
                               detail, created_at)
    VALUES (p_entity, p_entity_id, p_from, p_to, p_actor_type, p_actor, p_event_id, coalesce(p_detail, '{}'),
            coalesce(p_at, now()));
END;
$$;
