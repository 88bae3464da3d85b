"""Builds the single Starlette app: Stripe under /v1, Resend under /resend, Twilio under /twilio,
pages (hosted invoices, mailbox, /phone), control API.

The lifespan starts the ticker (scheduled emails and texts, bank debits) and closes webhook deliveries and
the state file cleanly on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from sandbox import BANNER, control_api, pages, phone_page, resend_api, stripe_api, twilio_api
from sandbox import resend_mail as mail
from sandbox import stripe_bank_disputes as bank
from sandbox import stripe_refunds as refunds
from sandbox import twilio_messages as texting
from sandbox.config import Settings
from sandbox.context import Sandbox

log = logging.getLogger("sandbox")


async def _ticker(sb: Sandbox) -> None:
    while True:
        await asyncio.sleep(sb.settings.resend_tick_s)
        try:
            mail.tick(sb)
        except Exception:  # A bad email must not stop scheduled sending for the others.
            log.exception("SANDBOX: scheduled email tick failed")
        try:
            texting.tick(sb)
        except Exception:
            log.exception("SANDBOX: scheduled text tick failed")
        try:
            bank.tick(sb, sb.settings.public_url or f"http://{sb.settings.host}:{sb.settings.port}")
        except Exception:
            log.exception("SANDBOX: bank debit settlement tick failed")
        try:
            refunds.tick(sb)
        except Exception:
            log.exception("SANDBOX: refund settlement tick failed")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    sb = Sandbox.create(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.warning("%s", BANNER)
        log.warning("SANDBOX: Stripe API at /v1, Resend API at /resend, mailbox at /mailbox, "
                    "control API at /_sandbox. Nothing here reaches the internet.")
        mail.configure_env_webhook(sb)
        ticker = asyncio.create_task(_ticker(sb))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await sb.deliverer.aclose()
            sb.store.save()

    app = Starlette(
        routes=[*stripe_api.routes, *resend_api.routes, *twilio_api.routes, *control_api.routes,
                *pages.routes, *phone_page.routes],
        lifespan=lifespan,
    )
    app.state.sandbox = sb
    return app
