"""pg_cron's queue job switched off (or dropped) after the sidecar started: the sidecar checks
it on every pass and queues due reminders itself, `crm doctor` exits 1 naming the fix, and the
Settings page's health says so.

Failed on the code before the fix (checked by hand): the sidecar looked for the extension
only, once per process, and skipped the pass; doctor printed `[ok  ] ... inactive`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.test_reminders_support import add_reminders, days, make_invoice, reminders_of, set_send_at, test_now

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def inactive_job(db: Conn, pg_cron: None) -> Iterator[int]:
    job = db.execute("SELECT jobid FROM cron.job WHERE jobname = 'crm-queue-due-reminders' "
                     "AND database = current_database()").fetchone()
    assert job is not None, "migrate registers the job"
    was = db.execute("SELECT active FROM cron.job WHERE jobid = %s", (job["jobid"],)).fetchone()
    db.execute("SELECT cron.alter_job(%s, active := false)", (job["jobid"],))
    yield job["jobid"]
    # The session keeps the job off (tests/conftest.py): it must not run against test data.
    db.execute("SELECT cron.alter_job(%s, active := %s)", (job["jobid"], was["active"] if was else False))


def test_cron_inactive_the_sidecar_queues_a_due_reminder_in_one_pass(db: Conn, inactive_job: int) -> None:
    from webhook.reminder_workers import queue_fallback_pass

    now = test_now()
    inv = make_invoice(db, due=(now - days(7)).date())
    rows = add_reminders(db, inv["invoice_id"], (now - days(7)).date())
    set_send_at(db, rows[0]["id"], now + days(0.5))

    result = queue_fallback_pass()

    assert result == {"queued": 1, "pg_cron_job": "inactive"}
    assert [r["status"] for r in reminders_of(db, inv["invoice_id"])] == ["queued", "pending", "pending"]


def test_cron_inactive_doctor_exits_1_naming_the_fix_and_settings_shows_it(
        db: Conn, inactive_job: int, database_url: str, app_as: Callable[..., Any]) -> None:
    doctor = subprocess.run([sys.executable, "-m", "crm", "doctor"], capture_output=True, text=True,
                            env={**os.environ, "DATABASE_URL": database_url}, timeout=120)
    assert doctor.returncode == 1, doctor.stdout
    assert "[FAIL] pg_cron job crm-queue-due-reminders is inactive" in doctor.stdout
    assert "Fix: switch it back on in the database: SELECT cron.alter_job(jobid, active := true)" in doctor.stdout

    at = app_as("owner", "pages/settings.py")
    assert any("crm-queue-due-reminders is inactive" in w.value for w in at.warning)

    # The fix doctor names, as written, works.
    fix = doctor.stdout.split("Fix: switch it back on in the database: ", 1)[1].split("\n", 1)[0].rstrip(".")
    db.execute(fix)  # type: ignore[arg-type]
    active = db.execute("SELECT active FROM cron.job WHERE jobid = %s", (inactive_job,)).fetchone()
    assert active == {"active": True}
