"""`python -m crm up`: the whole local system in one command.

Starts (or reuses) the database, applies migrations, loads the demo business and a demo
owner, then runs the sandbox (when Stripe or Resend has no key), the webhook sidecar and
the dashboard as child processes, and stops them all together on Ctrl-C or when one dies.
It owns process wiring only (ports, commands, the demo owner's login file); what each
process does lives in webhook/, dashboard.py and sandbox/.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from crm.config.settings import Settings, sandbox_url
from db.config import env_int, env_str, resolved_database_url

DEMO_OWNER = "owner@example.com"


def _credentials_file() -> Path:
    return Path(env_str("CRM_DATA_DIR", ".data")) / "demo-owner.txt"


def ensure_demo_owner(embedded: bool) -> tuple[str, str] | None:
    """The demo login to print: created once, with a random password kept in ./.data (mode 600).

    Only on the embedded database: a deployment's DATABASE_URL never gets a well-known owner
    (create one with `python -m crm create-user`). The password is printed only while it is
    still the demo owner's password; once changed, the stale file is removed.
    """
    from crm.users.auth import create_user
    from crm.users.passwords import verify_password
    from db import users
    from db.pool import connect

    if not embedded:
        return None
    path = _credentials_file()
    with connect() as conn:
        if users.count_owners(conn) == 0:
            password = secrets.token_urlsafe(12)
            create_user(conn, DEMO_OWNER, "Demo Owner", "owner", password)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{DEMO_OWNER}\n{password}\n")
            return DEMO_OWNER, password
        if not path.exists():
            return None
        email, password = path.read_text().split("\n")[:2]
        user = users.find_by_email(conn, email)
        if user is None or not verify_password(user["password_hash"], password):
            path.unlink()
            return None
    return email, password


def _spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    print(f"starting {name}: {' '.join(argv)}", flush=True)
    return subprocess.Popen(argv, env=env)


def run_all(seed: bool = True) -> int:
    from crm.config.settings import load_settings
    from db import users
    from db.config import database_config
    from db.migrate import migrate
    from db.pool import connect
    from ops.seed import seed_demo

    embedded = database_config().url is None
    url = resolved_database_url()
    for name in migrate(url):
        print(f"applied {name}")
    if seed and embedded:  # demo data only in the local database, never in a deployment's
        with connect() as conn:
            counts = seed_demo(conn)
        if counts:
            print("seeded demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    login = ensure_demo_owner(embedded)
    if not embedded and not login:
        with connect() as conn:
            if users.count_owners(conn) == 0:
                print("no owner yet: create one with `python -m crm create-user EMAIL --role owner`")
    with connect() as conn:
        settings = load_settings(conn)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    # Installed before any child starts, so Ctrl-C at any moment still stops them all.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        return _run_children(settings, url, login, children, lambda: stopping)
    finally:
        _stop_children(children)
        if embedded and not os.environ.get("CRM_KEEP_DATABASE"):
            from db.embedded import local_server

            local_server().stop()


def _run_children(settings: Settings, url: str, login: tuple[str, str] | None,
                  children: list[tuple[str, subprocess.Popen[bytes]]], stopping: Callable[[], bool]) -> int:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    py = sys.executable
    sandboxed = settings.stripe_sandboxed or settings.resend_sandboxed
    if sandboxed:
        port = sandbox_url().rsplit(":", 1)[-1]
        state = str(Path(env_str("CRM_DATA_DIR", ".data")) / "sandbox.json")
        argv = [py, "-m", "sandbox", "--port", port, "--state-file", state]
        children.append(("sandbox", _spawn("sandbox", argv, env)))
    webhook_port = str(env_int("WEBHOOK_PORT", 8000))
    children.append(("sidecar", _spawn("sidecar", [py, "-m", "webhook", "--port", webhook_port], env)))
    dashboard_port = str(env_int("DASHBOARD_PORT", 8501))
    children.append(("dashboard", _spawn("dashboard", [
        py, "-m", "streamlit", "run", "dashboard.py", "--server.port", dashboard_port,
        "--server.address", env_str("DASHBOARD_HOST", "127.0.0.1"),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ], env)))
    if sandboxed:
        from ops.demo_setup import connect_sandbox

        connect_sandbox(webhook_port)

    print("", flush=True)
    print(f"  dashboard  http://localhost:{dashboard_port}")
    print(f"  sidecar    http://localhost:{webhook_port}/healthz")
    if sandboxed:
        print(f"  SANDBOX    {sandbox_url()}  (offline Stripe/Resend emulators: no real money, no real email)")
        print(f"             mailbox {sandbox_url()}/mailbox")
    if login:
        print(f"  log in as  {login[0]}  /  {login[1]}")
    print("  Ctrl-C stops everything.", flush=True)
    while not stopping():
        for name, proc in children:
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the rest", file=sys.stderr)
                return proc.returncode or 1
        time.sleep(0.5)
    return 0


def _stop_children(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, proc in children:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for _, proc in children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
