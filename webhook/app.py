"""The sidecar's Starlette application: routes and lifespan."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("webhook")


async def healthz(request: Request) -> JSONResponse:
    """The process is up; says nothing about the database."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """The database answers and every migration on disk is applied."""
    from starlette.concurrency import run_in_threadpool

    def check() -> tuple[bool, str]:
        from db.pool import get_pool
        from db.status import migrations_current

        try:
            with get_pool().connection(timeout=2) as conn:
                if not migrations_current(conn):
                    return False, "migrations pending"
        except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
            return False, f"database unavailable: {type(exc).__name__}"
        return True, "ok"

    ok, reason = await run_in_threadpool(check)
    return JSONResponse({"status": reason}, status_code=200 if ok else 503)


def create_app() -> Starlette:
    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ])


app = create_app()
