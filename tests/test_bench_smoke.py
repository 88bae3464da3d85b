"""Smoke tests of the benchmarks: the generator's data loads into the test database whole and
plausible, and `python -m bench --smoke` runs end to end. No timing is asserted: bench reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.checks import orphans
from bench.datagen import Generator, Plan
from bench.loader import load
from bench.rows import anchor_for

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = anchor_for(datetime(2026, 6, 15, 13, 0, tzinfo=UTC))


def test_generator_is_deterministic() -> None:
    first = [c.rows["invoices"][:5] for c in Generator(Plan.for_invoices(50), ANCHOR, seed=3).chunks()]
    again = [c.rows["invoices"][:5] for c in Generator(Plan.for_invoices(50), ANCHOR, seed=3).chunks()]
    other = [c.rows["invoices"][:5] for c in Generator(Plan.for_invoices(50), ANCHOR, seed=4).chunks()]
    assert first == again
    assert first != other


def test_generated_data_loads_with_consistent_keys_and_realistic_statuses(
        db: psycopg.Connection[dict[str, Any]], database_url: str) -> None:
    result = load(database_url, 400, ANCHOR, seed=5)

    assert result.rows["invoices"] == 400
    assert db.execute("SELECT count(*) AS n FROM crm.invoices").fetchone() == {"n": 400}
    # The load skips per-row FK triggers, so every foreign key is checked here instead.
    assert set(orphans(db).values()) == {0}, orphans(db)
    statuses = {r["status"]: r["n"] for r in db.execute(
        "SELECT status, count(*) AS n FROM crm.invoices GROUP BY 1").fetchall()}
    assert statuses.get("paid", 0) > 0.6 * 400, statuses
    assert {"paid", "open", "void"} <= set(statuses), statuses
    # A payment per paid invoice, for the amount due; no pending reminder on a closed invoice.
    row = db.execute("""
        SELECT (SELECT count(*) FROM crm.payments) AS payments,
               (SELECT count(*) FROM crm.invoices WHERE status = 'paid') AS paid,
               (SELECT count(*) FROM crm.invoices i JOIN crm.payments p ON p.invoice_id = i.id
                 WHERE p.amount_cents <> i.amount_due_cents) AS wrong_amounts,
               (SELECT count(*) FROM crm.reminders r JOIN crm.invoices i ON i.id = r.invoice_id
                 WHERE i.status <> 'open' AND r.status IN ('pending', 'queued', 'scheduled')) AS live_reminders,
               (SELECT count(*) FROM crm.jobs j WHERE j.status = 'completed' AND EXISTS (
                    SELECT 1 FROM crm.invoices i WHERE i.job_id = j.id AND i.status NOT IN ('paid', 'void')))
                 AS wrongly_completed,
               (SELECT count(*) FROM crm.invoices i WHERE i.amount_due_cents <>
                    (SELECT sum(amount_cents) FROM crm.invoice_lines l WHERE l.invoice_id = i.id)) AS bad_totals
    """).fetchone()
    assert row == {"payments": statuses["paid"], "paid": statuses["paid"], "wrong_amounts": 0, "live_reminders": 0,
                   "wrongly_completed": 0, "bad_totals": 0}
    # Sequences continue after the explicit ids: the application's next insert gets a fresh id.
    new = db.execute("INSERT INTO crm.customers (name) VALUES ('After load') RETURNING id").fetchone()
    assert new is not None and new["id"] > 400 // 5


def test_bench_cli_smoke_run_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "PERFORMANCE.md"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--output", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240, check=False)

    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    for heading in ("# Performance", "## Targets", "## Data", "## Webhook sidecar", "## Dashboard data",
                    "## Reminder queueing", "## Send via Stripe"):
        assert heading in text
    assert "**Error**" not in text, text
    assert "Memory:" in text and "Postgres:" in text


def test_every_benchmark_part_finds_its_files_on_main() -> None:
    """A part whose files moved (as the SQL did into db/functions/) would be skipped as 'not on
    main yet' and the report would silently lose its numbers."""
    from bench.parts import PARTS, missing

    assert {key: missing(part) for key, part in PARTS.items()} == {key: [] for key in PARTS}


def test_bench_measures_a_baseline_commit_beside_head(tmp_path: Path) -> None:
    """The baseline comparison end to end at smoke size, HEAD against itself (an A/A run): both
    trees exported, migrated and served, every round measured on both sides."""
    out = tmp_path / "PERFORMANCE.md"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--only", "webhook", "--baseline", "HEAD",
                           "--output", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
                          check=False)

    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text(encoding="utf-8")
    assert "## Webhook sidecar against the baseline" in text
    assert "**Error**" not in text, text
    section = text.split("## Webhook sidecar against the baseline", 1)[1].split("\n## ", 1)[0]
    rounds = [line for line in section.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert [r.split(" | ")[1] for r in rounds] == ["HEAD", "baseline", "HEAD", "baseline"], section
    assert all("applied" in r for r in rounds), section
    assert "HEAD vs baseline (same run)" in text


def test_the_default_baseline_is_the_commit_the_committed_report_names() -> None:
    from bench import parts
    from bench.cli import baseline_ref

    assert baseline_ref("none") is None
    assert baseline_ref("234a687") == "234a687"
    report = parts.committed_text("docs/PERFORMANCE.md")
    named = next(line.split()[2] for line in report.splitlines() if line.startswith("- Code: "))
    auto = baseline_ref("auto")
    # The report's own commit, unless HEAD is that commit (then there is nothing to compare).
    assert auto == (None if parts.head_commit().startswith(named) else named)
