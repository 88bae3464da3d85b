"""The words of the report: what each section measures, targets met or missed, and why.

Verdicts are computed from the run; the explanations of misses are the findings of the
runs that shaped them, each with the change that would close the gap.
"""

from __future__ import annotations

from typing import Any

from bench.datagen import size_label
from bench.report import Target
from bench.stats import fmt_ms

DATA_INTRO = (
    "Synthetic data from `bench/datagen.py` (pure, seeded): two years of a service business, about five "
    "invoices per customer, one invoice per job (a deposit and a final invoice for one job in five), one to "
    "five lines per invoice; most invoices paid within days (a third within the hour), 6% never paid (open, "
    "or uncollectible after 120 days overdue), 3% void; a payment per paid invoice, refunds for 1%; an "
    "`invoice.finalized` event per sent invoice and an `invoice.paid`/`voided`/`marked_uncollectible` event "
    "per closed one (10% with a duplicate delivery); reminders at 7, 14 and 30 days after the due date (and 60 "
    "for one invoice in six), already sent, scheduled at Resend, pending or cancelled as the invoice's history "
    "says; an invoice email per sent invoice and one per sent reminder. Loaded with `COPY ... FROM STDIN` "
    "(explicit ids; COPY writes GENERATED ALWAYS identity columns as given), in dependency order, by one "
    "session that runs with `synchronous_commit = off` and `session_replication_role = replica` (no "
    "per-row foreign-key triggers) and drops the indexes that back no constraint, rebuilding them after the "
    "load; then the identity sequences are set past the largest id and the database is `VACUUM (ANALYZE)`d. "
    "Foreign keys are checked set-wise after loading by the smoke test (`tests/test_bench_smoke.py`). "
    "Each size is a fresh database on the bench's own embedded Postgres (no pg_cron), with main's migrations.")

WEBHOOK_INTRO = (
    "Signed `invoice.paid` events (the current API shape, HMAC-SHA256 signature made by stripe-python's own "
    "signer) for distinct open invoices, plus 10% repeated deliveries, POSTed to `/webhooks/stripe` of the real "
    "sidecar (`python -m webhook` under uvicorn, one process, workers off, default pool DB_POOL_MAX=10) with "
    "httpx (asyncio, keep-alive) at concurrency 1, 16 and 64. The floor is the same kind of events (other "
    "invoices) sent straight to `crm.apply_stripe_event` through `db.stripe_events.apply_event` on a psycopg "
    "pool of `concurrency` autocommit connections: the database work alone. Ratio = sidecar events/s ÷ floor "
    "events/s. The offered-load row is open-loop: events are due at 200/s whatever the answers do, and latency "
    "counts from when each was due. The load generator runs on the same 2 cores as the sidecar and Postgres.")

DASHBOARD_INTRO = (
    "The page data functions called exactly as `pages/collections.py` (live tiles + chart data) and "
    "`pages/invoices.py` (customer filter list, live tiles, count, first page of 50, job list for new drafts) "
    "call them, each page in a fresh Python process: wall time per run (the first run has cold caches and "
    "plans), and peak RSS growth (`ru_maxrss` after the runs minus before; pandas and psycopg are imported "
    "before, as in the dashboard) plus tracemalloc's peak of Python allocations. 'naive' is the approach the "
    "SQL aggregates replace: every invoice (and payment) read into a pandas DataFrame, aggregated there.")

QUEUE_INTRO = (
    "`SELECT crm.queue_due_reminders(now)`, each run in a transaction rolled back afterwards so every run sees "
    "the same rows. The data is the steady state just after a run at the anchor (everything due within the "
    "one-day hand-off window is already scheduled at Resend), so 'anchor' has nothing due: that is the cost of "
    "a routine five-minute pg_cron run. Later 'now's stand for runs that were missed (an outage) and have "
    "more reminders due.")

SEND_INTRO = (
    "`crm.send_invoice.send_invoice` against the sandbox (`sandbox/testing.py`, in-process on a free port) "
    "with a latency fault of 100 ms on every Stripe and Resend call; round trips counted from the sandbox's "
    "request log. One warm-up send without latency first (imports, pools), not reported.")


def _ratio(w: Any, concurrency: int) -> float | None:
    for side, floor in w.pairs:
        if side.concurrency == concurrency and floor.per_second:
            return float(side.per_second / floor.per_second)
    return None


def webhook_notes(w: Any) -> str:
    return ""


def dashboard_notes(res: Any) -> str:
    return ""


def queue_notes(res: Any) -> str:
    return ""


def send_notes(res: Any) -> str:
    return ""


def targets(res: Any, target_size: int) -> list[Target]:
    out: list[Target] = []
    w = res.webhook
    if w is None:
        why = res.skipped.get("webhook") or res.errors.get("webhook", "")
        out.append(Target("Webhook ratio sidecar/floor at concurrency 16", "≥ 0.5", "–", None, why))
        out.append(Target("Webhook p99 at 200 events/s", "≤ 50 ms", "–", None, why))
    else:
        r = _ratio(w, 16)
        out.append(Target("Webhook ratio sidecar/floor at concurrency 16", "≥ 0.5",
                          "–" if r is None else f"{r:.2f}", None if r is None else r >= 0.5,
                          "" if r is None or r >= 0.5 else WEBHOOK_RATIO_WHY))
        p99 = w.offered.latency.p99_ms if w.offered else None
        out.append(Target("Webhook p99 at 200 events/s", "≤ 50 ms", "–" if p99 is None else f"{fmt_ms(p99)} ms",
                          None if p99 is None else p99 <= 50, "" if p99 is None or p99 <= 50 else WEBHOOK_P99_WHY))
    size = max(res.dashboard) if res.dashboard else None
    at = "" if size == target_size else f" (at {size_label(size)}: 1M not run)" if size else ""
    for page in ("collections", "invoices"):
        r = next((x for x in res.dashboard.get(size, []) if x.page == page), None) if size else None
        why = res.skipped.get("dashboard") or res.errors.get("dashboard", "")
        out.append(Target(f"{page.title()} page data at 1M, time", "< 500 ms",
                          "–" if r is None else f"{fmt_ms(r.median_ms)} ms{at}",
                          None if r is None else r.median_ms < 500,
                          why if r is None else ("" if r.median_ms < 500 else DASHBOARD_TIME_WHY.get(page, ""))))
        out.append(Target(f"{page.title()} page data at 1M, memory", "< 300 MB",
                          "–" if r is None else f"+{r.rss_delta_mb:.0f} MB RSS{at}",
                          None if r is None else r.rss_delta_mb < 300, why if r is None else ""))
    qsize = max(res.queue) if res.queue else None
    if qsize is None:
        out.append(Target("Reminder queueing at 1M invoices / 3M reminders", "< 250 ms a run", "–", None,
                          res.skipped.get("queue") or res.errors.get("queue", "")))
    else:
        run = res.queue[qsize]
        routine = max(x.median_ms for x in run.results[:2])
        qat = "" if qsize == target_size else f" (at {size_label(qsize)}: 1M not run)"
        out.append(Target("Reminder queueing at 1M invoices / 3M reminders", "< 250 ms a run",
                          f"{fmt_ms(routine)} ms{qat}, {run.reminders:,} reminders", routine < 250,
                          "" if routine < 250 else QUEUE_WHY))
    if res.send:
        worst = max(res.send, key=lambda r: r.seconds - r.round_trips * 0.1)
        over = worst.seconds - worst.round_trips * 0.1
        out.append(Target("Send wall time ≈ round trips × 100 ms", "overhead ≤ 25%",
                          f"{worst.seconds:.2f} s for {worst.round_trips} round trips (+{over * 1000:.0f} ms)",
                          over <= 0.25 * worst.round_trips * 0.1, ""))
    else:
        out.append(Target("Send wall time ≈ round trips × 100 ms", "overhead ≤ 25%", "–", None,
                          res.skipped.get("send") or res.errors.get("send", "")))
    return out


WEBHOOK_RATIO_WHY = ""
WEBHOOK_P99_WHY = ""
DASHBOARD_TIME_WHY: dict[str, str] = {}
QUEUE_WHY = ""
