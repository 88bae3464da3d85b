"""`python -m webhook`: the sidecar under uvicorn, with the read timeouts and connection
limit of webhook/serving.py."""

from __future__ import annotations

import argparse
import os

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m webhook")
    parser.add_argument("--host", default=os.environ.get("WEBHOOK_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEBHOOK_PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEBHOOK_WORKERS", "1")))
    args = parser.parse_args()
    # Resolve the database once here so worker processes share one embedded server.
    from db.config import resolved_database_url
    from webhook.serving import uvicorn_options

    resolved_database_url()
    uvicorn.run("webhook.app:app", host=args.host, port=args.port, workers=args.workers,
                log_level=os.environ.get("LOG_LEVEL", "info").lower(), **uvicorn_options())


if __name__ == "__main__":
    main()
