"""The sidecar's Starlette application: routes and lifespan (background workers)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from webhook import jsonlog
from webhook.payment_worker import PAYMENT_DETAILS_WORKER
from webhook.reconcile_worker import RECONCILE_WORKER
from webhook.reminder_workers import REMINDER_WORKERS
from webhook.resend_route import RESEND
from webhook.stripe_route import STRIPE
from webhook.workers import Worker, WorkerRunner, workers_enabled

log = logging.getLogger("webhook")

# Every periodic job the sidecar runs; each module names its own (name, interval_s, pass).
WORKERS = [Worker(*spec) for spec in (*REMINDER_WORKERS, RECONCILE_WORKER, PAYMENT_DETAILS_WORKER)]


async def healthz(request: Request) -> JSONResponse:
    """The process is up; says nothing about the database."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers, every migration on disk is applied, and CRM_SECRET_KEY decrypts
    the stored secrets (with a wrong or lost key every webhook would be refused)."""

    def check() -> tuple[bool, str]:
        from crm.config.secrets_store import UNDECRYPTABLE
        from crm.config.settings import load_settings
        from db.pool import get_pool
        from db.status import migrations_current

        try:
            with get_pool().connection(timeout=2) as conn:
                if not migrations_current(conn):
                    return False, "migrations pending"
                undecryptable = load_settings(conn).undecryptable
                if undecryptable:
                    return False, f"{UNDECRYPTABLE}: {', '.join(sorted(undecryptable))}"
        except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
            try:
                get_pool().check()  # a restarted server leaves dead connections in the pool
            except Exception:  # noqa: BLE001
                pass
            return False, f"database unavailable: {type(exc).__name__}"
        return True, "ok"

    ok, reason = await run_in_threadpool(check)
    return JSONResponse({"status": reason}, status_code=200 if ok else 503)


def _routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        # Each provider is the skeleton (webhook/skeleton.py) plus its own signature and apply.
        STRIPE.route(),
        RESEND.route(),
    ]


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    runner = WorkerRunner(WORKERS if workers_enabled() else [])
    runner.start()
    log.info("sidecar started", extra={"fields": {"workers": [w.name for w in runner.workers]}})
    try:
        yield
    finally:
        await run_in_threadpool(runner.stop)


def create_app() -> Starlette:
    jsonlog.configure()
    return Starlette(routes=_routes(), lifespan=lifespan)


app = create_app()
