"""A database shaped like a Supabase project, for the pooled tests and the pooled soak.

What Supabase has and a bare test cluster lacks:

- the API roles, created as Supabase's initial schema creates them (supabase/postgres,
  migrations/db/init-scripts/00000000000000-initial-schema.sql): `anon` and `authenticated`
  NOLOGIN NOINHERIT, `service_role` NOLOGIN NOINHERIT BYPASSRLS, with USAGE on `public`;
- pg_cron enabled in the `postgres` database by the platform (not by the application),
  with the cron schema usable by the application role;
- an application role that is not a superuser. Ours, `crm_app`, owns the `crm` schema and
  nothing more: no CREATEDB, no CREATEROLE, no BYPASSRLS, no rights in `public` or any
  other schema;
- neighbours the application must not touch: a table in `public` and one in an `auth`
  schema, as Supabase's Auth keeps there.

Run once per database by a superuser (`provision`). Idempotent.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

APP_ROLE = "crm_app"

_ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
"""

_NEIGHBOURS = """
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.users (id bigint PRIMARY KEY, email text NOT NULL);
INSERT INTO auth.users VALUES (1, 'someone@example.com') ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS public.neighbour_notes (id bigint PRIMARY KEY, note text NOT NULL);
INSERT INTO public.neighbour_notes VALUES (1, 'not the CRM''s') ON CONFLICT DO NOTHING;
"""

# What the application needs of pg_cron to register and inspect its own jobs (the jobs then
# run as the role that registered them). cron.schedule_in_database is revoked from PUBLIC
# by pg_cron itself; cron.job and cron.job_run_details show a role only its own rows.
_CRON_GRANTS = """
GRANT USAGE ON SCHEMA cron TO {role};
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA cron TO {role};
GRANT SELECT ON cron.job, cron.job_run_details TO {role};
"""


def provision(admin_url: str, password: str, role: str = APP_ROLE, pg_cron: bool = True) -> None:
    """Make the database at `admin_url` (superuser) Supabase-shaped, with `role` owning `crm`."""
    ident = sql.Identifier(role)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(_ROLES)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
                             "NOREPLICATION PASSWORD {}").format(ident, sql.Literal(password)))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS crm AUTHORIZATION {}").format(ident))
        conn.execute(sql.SQL("ALTER SCHEMA crm OWNER TO {}").format(ident))
        conn.execute(_NEIGHBOURS)
        if pg_cron and conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'").fetchone():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            conn.execute(sql.SQL(_CRON_GRANTS).format(role=ident))
