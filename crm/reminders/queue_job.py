"""The pg_cron job that queues due reminders: what its state means and who queues instead.

The job (`crm-queue-due-reminders`, registered by `python -m crm migrate`) is checked on every
pass of the sidecar's queue worker; whenever it is not there and active, the sidecar runs the
same SQL function itself, so reminders never stop silently. `problem` is what `crm doctor`
(exit 1) and the Settings page's health say, with the fix.
"""

from __future__ import annotations

FIXES = {
    "missing": "run `python -m crm migrate` (it registers the job)",
    "inactive": "switch it back on in the database: SELECT cron.alter_job(jobid, active := true) FROM cron.job "
                "WHERE jobname = 'crm-queue-due-reminders'",
}


def sidecar_queues(state: str) -> bool:
    """True unless pg_cron's job is there and active. `state` is db.reminders.queue_job_state's."""
    return state != "active"


def problem(state: str) -> str | None:
    """What is wrong with the queue job, with the fix; None when nothing is (no pg_cron at all is
    a supported setup: the sidecar queues)."""
    if state in ("active", "no pg_cron"):
        return None
    return (f"pg_cron job crm-queue-due-reminders is {state}: reminders are queued by the sidecar only "
            f"while it runs. Fix: {FIXES.get(state, FIXES['missing'])}.")
