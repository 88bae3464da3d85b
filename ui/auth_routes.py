"""The two HTTP routes beside the Streamlit app (serve.py mounts them) that a script cannot
do itself: set the httpOnly session cookie for a login's one-time code, and clear it.

/auth/start?code=… trades the code for a token (crm.web_sessions.trade) and answers with the
cookie and a redirect to the app; /auth/end clears the cookie (logging out has already ended
the stored session, so the cookie is dead either way). Both redirect to "/" only, never to a
URL from the request.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from crm import web_sessions
from db.pool import connection

MOUNTED = False  # set by routes(): the login page sends the browser to /auth/start only when it exists


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def _trade(code: str) -> str | None:
    with connection() as conn:
        return web_sessions.trade(conn, code, datetime.now(UTC))


def _redirect() -> RedirectResponse:
    response = RedirectResponse("/", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


async def start(request: Request) -> RedirectResponse:
    token = await run_in_threadpool(_trade, request.query_params.get("code", ""))
    response = _redirect()
    if token:
        response.headers.append("set-cookie", web_sessions.cookie_header(token, _secure(request)))
    return response


async def end(request: Request) -> RedirectResponse:
    response = _redirect()
    response.headers.append("set-cookie", web_sessions.clear_header(_secure(request)))
    return response


def routes() -> list[Route]:
    global MOUNTED
    MOUNTED = True
    return [Route("/auth/start", start, methods=["GET"]), Route("/auth/end", end, methods=["GET"])]
