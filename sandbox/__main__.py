"""``python -m sandbox``: run the emulators with uvicorn on loopback."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from sandbox import BANNER
from sandbox.app import create_app
from sandbox.config import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=BANNER)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--state-file", default=settings.state_file,
                        help="JSON file that keeps sandbox state across restarts")
    args = parser.parse_args(argv)
    settings.host, settings.port, settings.state_file = args.host, args.port, args.state_file
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = f"http://{settings.host}:{settings.port}"
    logging.getLogger("sandbox").warning(
        "SANDBOX starting at %s  (STRIPE_API_BASE=%s  RESEND_API_URL=%s/resend  mailbox %s/mailbox)",
        base, base, base, base)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
