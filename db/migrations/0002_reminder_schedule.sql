-- The reminder queueing entry point and its pg_cron schedule.
-- One function, two triggers: pg_cron calls it where pg_cron exists (Supabase, CI);
-- the sidecar calls the same function on the same period where it does not.

-- Stub until the reminders migration replaces it (same signature): queues nothing.
CREATE OR REPLACE FUNCTION crm.queue_due_reminders(p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql AS $$
    SELECT 0;
$$;

-- Registers the pg_cron job when pg_cron can be used in this database; says why not
-- otherwise. Safe to call any number of times (python -m crm migrate calls it each run,
-- so enabling pg_cron after the first deploy needs no new migration).
CREATE OR REPLACE FUNCTION crm.ensure_cron_jobs()
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron') THEN
            RETURN 'pg_cron is not installed on this server';
        END IF;
        IF current_setting('cron.database_name', true) IS DISTINCT FROM current_database() THEN
            RETURN 'pg_cron is not preloaded for this database (shared_preload_libraries, cron.database_name)';
        END IF;
        CREATE EXTENSION pg_cron;
    END IF;
    PERFORM cron.schedule('crm-queue-due-reminders', '*/5 * * * *',
                          'SELECT crm.queue_due_reminders(now())');
    RETURN 'scheduled';
END;
$$;
