"""`python -m crm doctor`: a readable checklist of what works and what is missing.

It only reports: the database facts come from db/status.py, the integrations from crm/config/settings.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm.config.settings import Settings, load_settings, sandbox_url
from crm.reminders.queue_job import problem as queue_job_problem


def _golive(conn: Any, settings: Settings, line: Callable[[bool | None, str], None]) -> None:
    """The go-live checklist, checked for real (and remembered, as the Settings page does). In test
    mode an unfinished step is a note; in live mode it is a failure."""
    from crm.golive import steps as golive

    print("Go live, step by step:")
    golive.check_all(settings, None, actor="doctor")
    live = settings.stripe_mode == "live"
    for view in golive.checklist(conn, settings):
        sandbox = " [SANDBOX]" if view.sandboxed else ""
        line(True if view.green else (False if live else None),
             f"{view.step.number}. {view.step.title}: {view.detail}{sandbox}")
    refusals = golive.live_refusals(conn, settings)
    if live:
        line(not refusals, "6. Switch to live: live mode is on" + (
            ", but steps 1-5 are not all green" if refusals else ""))
    else:
        line(None, "6. Switch to live: " + ("allowed (Settings -> Go live)" if not refusals
                                             else f"refused until steps 1-5 are green ({len(refusals)} to do)"))


def run_doctor() -> int:
    from db.config import database_config, resolved_database_url
    from db.pool import connect
    from db.status import database_status

    problems = 0

    def line(ok: bool | None, text: str) -> None:
        nonlocal problems
        mark = {True: "ok  ", False: "FAIL", None: "note"}[ok]
        problems += ok is False
        print(f"[{mark}] {text}")

    cfg = database_config()
    try:
        url = resolved_database_url()
        conn = connect(url)
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        line(False, f"database unreachable: {exc}")
        return 1
    with conn:
        where = "DATABASE_URL" if cfg.url else "embedded server in ./.data/pg"
        status = database_status(conn)
        line(True, f"database reachable ({where}), PostgreSQL {status.server_version}")
        line(not status.migrations_pending,
             f"migrations: {status.migrations_applied} applied"
             + (f", pending: {', '.join(status.migrations_pending)} (run python -m crm migrate)"
                if status.migrations_pending else ", none pending"))
        line(not status.functions_stale,
             "SQL functions current (db/functions)" if not status.functions_stale
             else f"SQL functions out of date: {', '.join(status.functions_stale)} (run python -m crm migrate)")
        if status.pg_cron_jobs is None:
            line(None, "pg_cron not installed: the sidecar queues reminders itself "
                       "(on Supabase, enable pg_cron in Database -> Extensions, then run migrate)")
        else:
            line(bool(status.pg_cron_jobs), "pg_cron jobs: " + ("; ".join(status.pg_cron_jobs) or "none"))
            cron_problem = queue_job_problem(status.queue_job)
            if cron_problem:
                line(False, cron_problem)
            if status.pg_cron_failures:
                n = len(status.pg_cron_failures)
                line(False, f"pg_cron: {n} failed run{'s' if n > 1 else ''} in the last day "
                            f"(cron.job_run_details), latest first: " + "; ".join(status.pg_cron_failures))
        line(not status.tables_without_rls,
             "row level security on every crm table" if not status.tables_without_rls
             else f"RLS missing on: {', '.join(status.tables_without_rls)}")
        if status.migrations_pending or status.functions_stale:
            return 1
        settings = load_settings(conn)
        if settings.undecryptable:
            from crm.config.secrets_store import UNDECRYPTABLE, WHAT_TO_DO

            line(False, f"{UNDECRYPTABLE}: {', '.join(sorted(settings.undecryptable))}. What to do: {WHAT_TO_DO}")
            return 1
        mode = settings.stripe_mode
        line(None, f"Stripe mode: {mode}")
        if settings.stripe_sandboxed:
            line(None, f"Stripe: SANDBOX (no {mode} secret key) at {sandbox_url()}")
        else:
            line(True, f"Stripe: {mode} key configured ({settings.sources[f'stripe.{mode}.secret_key']})")
        secrets = settings.stripe_webhook_secrets(mode)
        line(bool(secrets) or settings.stripe_sandboxed,
             f"Stripe webhook signing secrets for {mode}: {len(secrets)}")
        if settings.resend_sandboxed:
            line(None, f"Resend: SANDBOX (no API key) at {sandbox_url()}/resend")
        else:
            line(True, f"Resend: API key configured ({settings.sources['resend.api_key']})")
        line(None, f"sending as {settings['email.from']} for {settings['business.name']}")
        _golive(conn, settings, line)
    return 1 if problems else 0

