"""The README's run command on embedded defaults: database, sidecar and dashboard come up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from db.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(url: str, proc: subprocess.Popen[str], timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"`crm up` exited early with {proc.returncode}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout}s")


@pytest.mark.slow
def test_up_brings_the_whole_system_up_and_down(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("pg", "webhook", "dashboard", "sandbox")}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRM_SECRET_KEY")}
    env.update(
        CRM_DATA_DIR=str(tmp_path / "data"),
        EMBEDDED_PG_PORT=str(ports["pg"]),
        WEBHOOK_PORT=str(ports["webhook"]),
        DASHBOARD_PORT=str(ports["dashboard"]),
        SANDBOX_URL=f"http://127.0.0.1:{ports['sandbox']}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm", "up"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        health = _wait_for(f"http://127.0.0.1:{ports['webhook']}/healthz", proc)
        assert health.json() == {"status": "ok"}
        ready = _wait_for(f"http://127.0.0.1:{ports['webhook']}/readyz", proc)
        assert ready.status_code == 200, ready.text
        page = _wait_for(f"http://127.0.0.1:{ports['dashboard']}/", proc)
        assert page.status_code == 200
        assert "streamlit" in page.text.lower()
        assert (tmp_path / "data" / "pg" / "data" / "PG_VERSION").exists(), "data lives under CRM_DATA_DIR"
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    assert "seeded demo data" in output
    assert "log in as  owner@example.com" in output
    # The password is printed once for the demo, and kept only in a 600 file under the data dir.
    creds = tmp_path / "data" / "demo-owner.txt"
    assert creds.stat().st_mode & 0o077 == 0
