"""A fresh machine's first `make run`: seconds from a new clone to the login page in Chromium.

`python -m bench.first_run` clones this repository's HEAD into a temporary folder it
creates, runs `make run` there (a new virtualenv, and UV_CACHE_DIR and PIP_CACHE_DIR in
empty folders of its own, so every package is downloaded), waits until the dashboard's
login page shows its "Log in" button in headless Chromium, then stops everything it
started (its own process group) and removes the folder it created. It prints the figures;
with `--write` it also appends them to docs/first-run-results.md, which the bench's report
(docs/PERFORMANCE.md) includes. Not part of `make bench`: it measures the install and the
machine's load as much as the code.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.parts import ROOT
from db.embedded import free_port

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_S = 600.0


def _clone(into: Path) -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(into)], check=True)
    subprocess.run(["git", "checkout", "--quiet", head], cwd=into, check=True)
    return head


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "DATABASE_URL", "CRM_SECRET_KEY", "PYTHONPATH")}
    for name in ("UV_CACHE_DIR", "PIP_CACHE_DIR"):
        folder = tmp / name.lower()
        folder.mkdir()
        env[name] = str(folder)
    env.update(EMBEDDED_PG_PORT=str(free_port()), WEBHOOK_PORT=str(free_port()), DASHBOARD_PORT=str(free_port()),
               SANDBOX_URL=f"http://127.0.0.1:{free_port()}", PYTHONUNBUFFERED="1")
    return env


def _login_page_shown(url: str, deadline: float, proc: subprocess.Popen[bytes]) -> None:
    from playwright.sync_api import sync_playwright

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`make run` exited with {proc.returncode} before the dashboard answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page()
            page.goto(url)
            page.get_by_role("button", name="Log in").wait_for(timeout=max(1.0, deadline - time.monotonic()) * 1000)
        finally:
            browser.close()


# The first log line of each phase, in the order `make run` reaches them.
MILESTONES = (("locks installed", "-m crm up"), ("migrated", "applied "),
              ("seeded", "seeded demo data"), ("dashboard started", "starting dashboard"),
              ("all started", "log in as"))


def _timestamp_lines(proc: subprocess.Popen[bytes], started: float, log: Path, seen: dict[str, float]) -> None:
    """Copy `make run`'s output to the log with the seconds since the start; note each milestone's first time."""
    assert proc.stdout is not None
    with log.open("w", encoding="utf-8") as out:
        for raw in proc.stdout:
            at = time.monotonic() - started
            line = raw.decode(errors="replace").rstrip()
            out.write(f"{at:7.1f} {line}\n")
            out.flush()
            for name, marker in MILESTONES:
                if name not in seen and marker in line:
                    seen[name] = at


RESULTS = ROOT / "docs" / "first-run-results.md"
RESULTS_INTRO = (
    "A fresh clone's first `make run`, to the login page in Chromium, with empty package caches "
    "(`python -m bench.first_run --write`, `bench/first_run.py`): a new virtualenv made without pip, "
    "uv installed by pip from `requirements-bootstrap.lock`, then `requirements.lock` installed by uv "
    "(`--require-hashes`), the embedded Postgres created and migrated, the demo business seeded, the "
    "sandbox, sidecar and dashboard started. Phases are seconds since `make run` started. The load "
    "average is this shared 2-core machine's (other engineers' test suites) when the run ended: every "
    "phase stretches with it. Goal: at most 60 s.\n\n"
    "| Run | Code | To the login page | Installer | Phases | Load average (1, 5, 15 min) |\n"
    "|---|---|---|---|---|---|")


def _append(row: str) -> None:
    text = RESULTS.read_text(encoding="utf-8").rstrip("\n") if RESULTS.exists() else RESULTS_INTRO
    RESULTS.write_text(text + "\n" + row + "\n", encoding="utf-8")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="first-run-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        repo = tmp / "repo"
        head = _clone(repo)
        env = _env(tmp)
        started = time.monotonic()
        proc = subprocess.Popen(["make", "run"], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        seen: dict[str, float] = {}
        threading.Thread(target=_timestamp_lines, args=(proc, started, tmp / "make-run.log", seen), daemon=True).start()
        url = f"http://127.0.0.1:{env['DASHBOARD_PORT']}/"
        deadline = started + TIMEOUT_S
        _login_page_shown(url, deadline, proc)
        total = time.monotonic() - started
        used_uv = "uv failed: installing" not in (tmp / "make-run.log").read_text(errors="replace").replace(
            'echo "uv failed: installing', "")
        phases = ", ".join(f"{name} {at:.1f} s" for name, at in sorted(seen.items(), key=lambda kv: kv[1]))
        load = os.getloadavg()
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        row = (f"| {when} UTC | {head[:7]} | **{total:.1f} s** | {'uv' if used_uv else 'pip (uv failed)'} | "
               f"{phases} | {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} |")
        print(row)
        if "--write" in sys.argv[1:]:
            _append(row)
        return 0
    except Exception:
        if (tmp / "make-run.log").exists():
            sys.stderr.write((tmp / "make-run.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # our own group: make, `crm up` and its children
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
