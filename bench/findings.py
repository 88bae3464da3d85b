"""The words of the report: what each section measures, targets met or missed, and why.

Verdicts are computed from the run; the explanations of misses are the findings of the
runs that shaped them, each with the change that would close the gap.
"""

from __future__ import annotations

from typing import Any

from bench.report import Target
from bench.rows import size_label
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
    "sidecar (`python -m webhook` under uvicorn, one process, workers off, default pool DB_POOL_MAX=10) over "
    "keep-alive HTTP/1.1 connections (`bench/http_sender.py`) at concurrency 1, 16 and 64. "
    "The floor is the same kind of events (other "
    "invoices) sent straight to `crm.apply_stripe_event` through `db.stripe_events.apply_event` on a psycopg "
    "pool of `concurrency` autocommit connections: the database work alone. Ratio = sidecar events/s ÷ floor "
    "events/s. The offered-load row is open-loop: events are due at 200/s whatever the answers do, and latency "
    "counts from when each was due. The load generator runs on the same 2 cores as the sidecar and Postgres. "
    "Each phase starts with the signatures already made (timestamps well inside Stripe's 300 s tolerance).")

DASHBOARD_INTRO = (
    "The page data functions called exactly as `pages/collections_page.py` (live tiles + chart data) and "
    "`pages/invoices.py` (customer filter list, live tiles, count, first page of 50, job list for new drafts) "
    "call them, each page in a fresh Python process: wall time per run (the first run has cold caches and "
    "plans), and peak RSS growth (`ru_maxrss` after the runs minus before; pandas and psycopg are imported "
    "before, as in the dashboard; 0.0 means the page never took the process above the peak its imports had "
    "reached) plus tracemalloc's peak of Python allocations (not traced for the naive path at 1M: too slow). "
    "'naive' is the approach the "
    "SQL aggregates replace: every invoice (and payment) read into a pandas DataFrame, aggregated there.")

QUEUE_INTRO = (
    "`SELECT crm.queue_due_reminders(now)`, each run in a transaction rolled back afterwards so every run sees "
    "the same rows. The data is the steady state just after a run at the anchor (everything due within the "
    "one-day hand-off window is already scheduled at Resend), so 'anchor' has nothing due: that is the cost of "
    "a routine five-minute pg_cron run. Later 'now's stand for runs that were missed (an outage) and have "
    "more reminders due.")

SEND_INTRO = (
    "`crm.send.workflow.send_invoice` against the sandbox (`sandbox/testing.py`, in-process on a free port) "
    "with a latency fault of 100 ms on every Stripe and Resend call; round trips counted from the sandbox's "
    "request log. One warm-up send without latency first (imports, pools), not reported.")


def _ratio(w: Any, concurrency: int) -> float | None:
    for side, floor in w.pairs:
        if side.concurrency == concurrency and floor.per_second:
            return float(side.per_second / floor.per_second)
    return None


def webhook_notes(w: Any) -> str:
    notes = []
    by_c = {side.concurrency: side for side, _ in w.pairs}
    if 16 in by_c:
        side = by_c[16]
        cpu = side.cpu_ms_per_event(side.server_cpu_s)
        gen = side.cpu_ms_per_event(side.client_cpu_s)
        if cpu:
            notes.append(
                f"**Where the sidecar's time goes.** At concurrency 16 the sidecar process spent {cpu:.2f} ms of CPU "
                "per event (HTTP, Starlette, signature check, JSON, one thread-pool hop for the apply (the signing "
                "secrets come from the in-process cache, on the event loop), the JSON log line, the pool), "
                f"so one uvicorn process tops out near {1000 / cpu:.0f} events/s on one core whatever Postgres does; "
                f"the load generator spent {gen or 0:.2f} ms. The floor has no such process, which is why the ratio is "
                "lowest at concurrency 1 (every event pays the HTTP hop in series). At 64 the floor falls behind the "
                "sidecar: 64 backends contend for 2 cores, while the sidecar's pool (DB_POOL_MAX=10) keeps Postgres "
                "at 10; a pool of 2-4× the cores is the better setting.")
    notes.append(
        "**Run-to-run variation of the fixed-load tail.** Two earlier runs of this code measured p99 9.3 ms and "
        "145 ms at 200/s (p95 5.1 ms in the second, max 234 ms): one stall of a few hundred ms catches more than "
        "1% of a 10-second window. The bench now issues a CHECKPOINT after loading, so the load's writes are "
        "not flushed during the measurements (the likely stall); other engineers' test suites on the same two "
        "cores remain a source of noise.")
    notes.append(
        "**Load generator.** The first runs used httpx's AsyncClient: it cost 1.3 ms (concurrency 1) to 7 ms "
        "(concurrency 64) of CPU per request on this machine, more than the sidecar itself, and made the "
        "ratio look like 0.39 at concurrency 16. The sender is now `bench/http_sender.py` (pre-built requests on "
        "asyncio streams, about 0.1 ms per request). Tried once and left out: uvicorn with uvloop and httptools "
        "(installed outside .venv for the experiment) changed nothing measurable (259 vs 239 events/s at "
        "concurrency 1, 335 vs 338 at 16, with the httpx sender): HTTP parsing is not the sidecar's cost.")
    if w.same_job_pairs:
        dead = sum(v for k, v in w.same_job.items() if k.startswith("error"))
        summary = ", ".join(f"{k} {v}" for k, v in sorted(w.same_job.items()))
        notes.append(
            f"**Finding: two invoices of one job paid at the same moment can deadlock.** {w.same_job_pairs} jobs with "
            f"a deposit and a final invoice both open, both `invoice.paid` events applied at once on two "
            f"connections: {summary} ({dead} events failed). Found by an earlier run of this phase: the paying "
            "event wrote the invoice row twice (amount_paid_cents, then the status); Postgres re-checks a foreign "
            "key when a transaction updates a row version it wrote itself, so the second UPDATE took FOR KEY SHARE "
            "on the job row through the composite key (job_id, customer_id), and each transaction then asked for "
            "FOR UPDATE on the same job to complete it, which conflicts with the other's KEY SHARE: a deadlock. "
            "The sidecar answered 500 and Stripe retried, so no payment was lost, but the job completed only on "
            "the retry. Fixed twice over: `crm.complete_job_if_done` (db/functions/30_jobs.sql) locks the job "
            "with `FOR NO KEY UPDATE`, which does not conflict with KEY SHARE, and since issue #12 the paying "
            "event writes the invoice row once (amount and status in one UPDATE), so the re-check is gone too.")
    return "\n\n".join(notes)


def dashboard_notes(res: Any) -> str:
    size = max(res.dashboard)
    rows = {r.page: r for r in res.dashboard[size]}
    notes = []
    sql, naive = rows.get("collections"), rows.get("naive_collections")
    if sql and naive:
        notes.append(
            f"At {size_label(size)} invoices the Collections data takes {fmt_ms(sql.median_ms)} ms and about "
            f"{sql.rss_delta_mb:.0f} MB more memory in SQL, against {fmt_ms(naive.median_ms)} ms and "
            f"{naive.rss_delta_mb:.0f} MB when every invoice goes through a DataFrame "
            f"({naive.median_ms / max(sql.median_ms, 0.001):.0f}× slower). The SQL pages move a few hundred rows to "
            "Python whatever the size; their memory does not grow with the data.")
    b = res.breakdown.get(size, {}).get("collections", {})
    if b:
        top = sorted(b.items(), key=lambda kv: -kv[1])[:4]
        notes.append("Slowest Collections queries at this size: " +
                     ", ".join(f"`{k}` {fmt_ms(v)} ms" for k, v in top) + ".")
    notes.append(COLLECTIONS_ROLLUP)
    notes.append(COLLECTIONS_FINDINGS)
    if sql and sql.median_ms >= 500:
        notes.append(COLLECTIONS_STILL_MISSED)
    return "\n\n".join(notes)


COLLECTIONS_ROLLUP = (
    "**Changed to meet the target: the daily roll-up (db/migrations/0016_statements_rollup.sql, "
    "db/functions/90_collections_daily.sql).** `crm.collections_daily` holds one row per local day of the "
    "business's time zone: by send day, the invoices sent (not void) and their amount, how many were paid the "
    "same local day and within an hour (the page's new top tiles), and the funnel stages; by payment day, the "
    "payments, gross and fees, and the invoices paid by time-to-pay bucket. Triggers on invoices, payments and "
    "invoice emails append each changed `sent_at`/`paid_at` (old and new) to `crm.collections_changes`: plain "
    "inserts without a key, so concurrent webhooks never wait on each other there. Every read first calls "
    "`crm.refresh_collections_daily(tz)`, which deletes those rows and recomputes only their local days, each "
    "run of consecutive days from one index range (a payment today for an invoice sent in May recomputes two "
    "days, not the months between), then the exact median time to pay of those days' weeks "
    "(`crm.collections_weekly`: a median does not add up from days, so a changed week is recomputed from its own "
    "invoices, ~1/26 of the chart's window); a roll-up built for another time zone is rebuilt. By reminder day it "
    "also keeps reminders sent, invoices whose first reminder went out that day and how many of them were paid "
    "after it ('what reminders did' now counts invoices by their first reminder: the same numbers over any window "
    "that starts before an invoice's first reminder). The weekly sums, the time-to-pay buckets, the funnel, the "
    "weekly medians, what reminders did, invoiced in 90 days and this month's payments read ~200 rows; the open "
    "balances, aging and the tiles' rolling 30-day medians still read the invoices (index-only). Each measured "
    "run above starts with one change today (as after a payment), so it includes recomputing today's row and "
    "this week's median (`refresh_daily`). Rejected: a trigger that adds to the day's row in place (that row "
    "would be a lock every payment webhook of the day queues on, and the funnel's 'any of the invoice's emails "
    "was opened' cannot be kept by increments); weekly medians from the histogram (approximate). A first "
    "version kept only the days (weekly medians and reminders still read from the tables): 797 ms at 1M on this "
    "machine at load average 10, of which `weekly_median_time_to_pay` 327 ms and `reminder_effect` 201 ms, which "
    "is why both moved into the roll-up.")

COLLECTIONS_FINDINGS = (
    "**Changed before (issue 11) to approach the target (db/queries_collections.py, 0011's covering indexes)."
    "** The run before measured, per warm query at 1M: `funnel` 616 ms, `collected_vs_invoiced_weekly` 540, "
    "`tiles` 438, `weekly_median_time_to_pay` 260, `time_to_pay_distribution` 141, `reminder_effect` 128, "
    "`aging_by_customer` 103, `aging_totals` 76; the page data 2330 ms. Three causes, found with "
    "EXPLAIN (ANALYZE, BUFFERS) on the 1M data: (1) `funnel` joined every invoice email (a sequential scan of "
    "`email_messages`, 1.26M rows) to the invoices sent in the window; it now looks up each sent invoice's "
    "emails with a LATERAL on a partial covering index (`email_messages (invoice_id) INCLUDE (delivered_at, "
    "first_opened_at, first_clicked_at) WHERE kind = 'invoice'`), so it follows the window, exactly (bounding "
    "the emails by `created_at` was rejected: a Send resumed days later has its email created before "
    "`sent_at`). (2) The windowed charts read ~170k invoices and as many payments through bitmap heap scans; "
    "covering indexes make every one an index-only scan (`invoices (paid_at) INCLUDE (sent_at)`, `invoices "
    "(sent_at) INCLUDE (id, status, amount_due_cents, paid_at)`, `payments (paid_at) INCLUDE (amount_cents, "
    "fee_cents)`, the open balances `invoices (due_date) INCLUDE (customer_id, amount_due_cents, "
    "amount_paid_cents) WHERE status = 'open'`, `reminders (sent_at) INCLUDE (invoice_id) WHERE status = "
    "'sent'`); `tiles` reads the open invoices once and 60 days of time to pay once (both medians with "
    "FILTER) instead of five subqueries. (3) Postgres JIT-compiled the weekly and funnel plans (cost over "
    "`jit_above_cost`): 100-190 ms of compilation for a 110 ms execution; those two queries run with "
    "`SET LOCAL jit = off`. Index-only scans rely on the visibility map, which autovacuum keeps current (the "
    "bench VACUUMs after loading). The page also caches its chart data for 30 s (`st.cache_data(ttl=30)`); "
    "only `tiles` runs on every 3 s live refresh.")

COLLECTIONS_STILL_MISSED = (
    "**Why the page is still over 500 ms at 1M, and what would close it.** (The analysis of issue 11, before "
    "the roll-up.) What remains is work per row of "
    "the window, not per row of the table: the funnel's one index lookup per invoice sent in 90 days "
    "(~70k), the weekly medians' sort of 26 weeks of paid invoices (~160k), and the weekly sums over 26 "
    "weeks of sent invoices and payments (~330k index tuples, each with a time-zone conversion). Indexes "
    "cannot shrink that further. A daily roll-up would: one row per local day (invoiced, collected, fees, a "
    "time-to-pay histogram, funnel stage counts by send day), kept by the same transactions that set "
    "`sent_at`, `paid_at` and the email tracking columns, so every chart reads ~180 rows; the weekly median "
    "would then come from the histogram (a bucket's bound, not the exact median), a change of what the page "
    "shows that is the owner's call. Smaller steps: store the funnel stages on the invoice (three booleans "
    "set by `crm.apply_resend_event`) so the funnel is one index-only scan of `invoices`, and cache the "
    "charts longer than 30 s (they move by the day).")


def queue_notes(res: Any) -> str:
    size = max(res.queue)
    run = res.queue[size]
    first, last = run.results[0], run.results[-1]
    notes = [
        f"At {size_label(size)}: {run.reminders:,} reminders, {run.pending:,} of them pending. A routine run "
        f"('anchor') takes {fmt_ms(first.median_ms)} ms; a run a month behind with {last.due:,} reminders due "
        f"takes {fmt_ms(last.median_ms)} ms: about "
        f"{(last.median_ms - first.median_ms) / max(last.due, 1):.3f} ms per due reminder (queue or supersede, "
        "audit row). Catching up a month in one run is over 250 ms, which only happens after an outage "
        "that long; the routine runs are the target."]
    if first.without_index_ms is not None:
        notes.append(
            "**Changed to reach the target:** migration 0007 (now part of `db/migrations/0011_baseline.sql`) "
            "added a partial index on the "
            "live reminders (`WHERE status IN ('pending', 'queued')`). Without it the function's first statement "
            "(cancel pending or queued reminders of invoices no longer open) read the whole table on every run: "
            f"{fmt_ms(first.without_index_ms)} ms for a routine run at this size, against "
            f"{fmt_ms(first.median_ms)} ms with it (the last column above is the same run with the index dropped "
            "inside the rolled-back transaction). Since 0011 bounds that statement by `send_at` (below), it no "
            "longer depends on 0007's index: the column shows about the same time without it.")
    notes.append(
        "**Bounded in 0011:** that first statement had no bound on `send_at`, so it visited every live "
        "reminder (the future reminders of all open invoices, 8.5k at 1M) and looked up each one's invoice. "
        "Migration 0011 (now part of the baseline; the function lives in `db/functions/40_reminders.sql`) "
        "replaced `crm.queue_due_reminders_within` with the same "
        "function bounded like the queueing statement (`AND r.send_at <= p_now + p_window`, served by a partial "
        "index on the live reminders' `send_at`): the payment transaction already cancels an invoice's "
        "reminders, so this defence only needs the ones about to go out, and a reminder of a closed invoice "
        "outside the window is cancelled when it comes due (nothing outside the window is ever queued). The "
        "previous run measured a routine run at 1M at 40-45 ms. The queueing statement itself uses "
        "`reminders_pending_due_idx` and reads only the due rows (plans below).")
    return "\n\n".join(notes)


def send_notes(res: Any) -> str:
    rows = res.send
    parts = []
    for r in rows:
        over = r.seconds - r.round_trips * 0.1
        parts.append(f"{r.label}: {r.round_trips} round trips, {r.seconds:.2f} s, {over * 1000:.0f} ms beyond "
                     f"round trips × 100 ms ({over * 1000 / max(r.round_trips, 1):.0f} ms per call)")
    return ("; ".join(parts) + ". The calls are sequential by design (each step's result feeds the next and is "
            "recorded before the next starts), so with a real Stripe at 100-300 ms per call the wall time is the "
            "number of calls times Stripe's latency; the CRM's own share (its transactions, the email render, "
            "the request log) is the overhead column. A returning customer saves the customer call.")


BASELINE_CONCURRENCY = 16
BASELINE_INTRO = (
    "Did this code make the webhook slower? A report from another day cannot say: this shared machine's "
    "speed varies about 2x from hour to hour. So a full run also measures the sidecar of a baseline commit "
    "(by default the commit the previous committed report was measured on) beside HEAD's, in the same run "
    "(`bench/webhook_baseline.py`): each side's committed tree, exported with `git archive`, migrates its own "
    "database and serves its own sidecar; the same generated data is loaded into both; the rounds alternate "
    "which side goes first, and each measures both sides: a closed loop at concurrency 16 over HTTP and on "
    "the SQL floor, then the open-loop 200/s phase. The ratio is taken over all rounds; the p99 compared is "
    "the median of the rounds' p99s, because one stall of a second (this machine has them, on either side) "
    "moves a pooled p99 by itself; the pooled percentiles are shown beside it.")


def baseline_notes(b: Any) -> str:
    head_lat, base_lat = b.head.offered_latency(), b.base.offered_latency()
    ratio = b.head.ratio() / b.base.ratio() if b.base.ratio() else float("nan")
    p99 = b.head.round_p99_ms() / b.base.round_p99_ms() if b.base.round_p99_ms() else float("nan")
    pooled = head_lat.p99_ms / base_lat.p99_ms if base_lat.p99_ms else float("nan")
    p50 = head_lat.p50_ms / base_lat.p50_ms if base_lat.p50_ms else float("nan")
    return (f"HEAD ÷ baseline: ratio sidecar/floor {ratio:.2f}×, p50 at {b.rate:.0f}/s {p50:.2f}×, p99 "
            f"{p99:.2f}× (median of the rounds; pooled {pooled:.2f}×). Below 1.00× a latency is lower, better; "
            "above 1.00× the ratio is higher, better.")


def baseline_targets(res: Any) -> list[Target]:
    b = getattr(res, "baseline", None)
    if b is None:
        err = res.errors.get("baseline")
        if not err:
            return []
        return [Target("Webhook ratio at concurrency 16, HEAD vs baseline (same run)", "≥ baseline", "–", None, err),
                Target("Webhook p99 at 200 events/s, HEAD vs baseline (same run)", "≤ baseline", "–", None, err)]
    head_ratio, base_ratio = b.head.ratio(), b.base.ratio()
    head_p99, base_p99 = b.head.round_p99_ms(), b.base.round_p99_ms()
    base_sha = b.base.commit.split()[0]
    if any(x != x for x in (head_ratio, base_ratio, head_p99, base_p99)):  # NaN: a side measured nothing
        why = "a side measured no events (too few open invoices)"
        return [Target("Webhook ratio at concurrency 16, HEAD vs baseline (same run)", "≥ baseline", "–", None, why),
                Target("Webhook p99 at 200 events/s, HEAD vs baseline (same run)", "≤ baseline", "–", None, why)]
    return [
        Target("Webhook ratio at concurrency 16, HEAD vs baseline (same run)", f"≥ baseline ({base_sha})",
               f"{head_ratio:.2f} vs {base_ratio:.2f}", head_ratio >= base_ratio,
               "" if head_ratio >= base_ratio else BASELINE_WHY),
        Target("Webhook p99 at 200 events/s, HEAD vs baseline (same run)", f"≤ baseline ({base_sha})",
               f"{fmt_ms(head_p99)} ms vs {fmt_ms(base_p99)} ms (median of {len(b.head.rounds)} rounds)",
               head_p99 <= base_p99,
               "" if head_p99 <= base_p99 else BASELINE_WHY),
    ]


BASELINE_WHY = "see the rounds under 'Webhook sidecar against the baseline' for how far apart the sides are"


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
        why = ""
        if w.offered and p99 is not None and p99 > 50:
            lat = w.offered.latency
            why = (f"p50 {fmt_ms(lat.p50_ms)} ms and p95 {fmt_ms(lat.p95_ms)} ms, but a stall (max "
                   f"{fmt_ms(lat.max_ms)} ms) caught more than 1% of the 10-second window; " + WEBHOOK_P99_WHY)
        out.append(Target("Webhook p99 at 200 events/s", "≤ 50 ms", "–" if p99 is None else f"{fmt_ms(p99)} ms",
                          None if p99 is None else p99 <= 50, why))
    out += baseline_targets(res)
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


WEBHOOK_RATIO_WHY = ("the sidecar's own CPU per event (see 'Where the sidecar's time goes') caps one uvicorn "
                     "process; on 2 shared cores a second process (WEBHOOK_WORKERS=2) competes with Postgres "
                     "itself, so the lever is less work per request (a cheaper log line)")
WEBHOOK_P99_WHY = ("at 200/s one pause of a single process (the sidecar's, or Postgres's) queues every event "
                   "behind it. This 2-core box also runs the other engineers' test suites; an earlier run of "
                   "the same code measured p99 9.3 ms. To close it for sure: a second sidecar process behind "
                   "the same port (WEBHOOK_WORKERS=2) on a machine with cores to spare, so one stalled process "
                   "does not hold the queue, and a longer window (60 s) for a steadier p99")
DASHBOARD_TIME_WHY: dict[str, str] = {
    "collections": "with the daily roll-up what is left is read from the tables: the tiles' rolling 30-day "
                   "medians, the open balances and aging; see the per-query table under Dashboard data",
    "invoices": "see the per-query table under Dashboard data",
}
QUEUE_WHY = ("see the plans under Reminder queueing for the statement that grew")
