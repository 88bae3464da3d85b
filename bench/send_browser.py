"""Send in the browser: seconds from clicking "Confirm send" until the pay link shows.

What a user of `make run` meets: `python -m crm up` in a temporary data folder (embedded
Postgres with the demo business, the sandbox, the sidecar with its workers, the dashboard),
headless Chromium logged in as the demo owner. For each send a fresh draft (a demo job,
three lines) is made in the database, opened by its link (`?invoice=ID`), sent with "Send
via Stripe" then "Confirm send", and timed until the pay link is on the page. The first
send warms up (imports, pools) and is not counted. Everything started is stopped and the
folder removed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from bench.parts import ROOT
from db.embedded import free_port

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 300.0
FAILURE_SHOT = ROOT / ".data" / "bench-send-browser-failure.png"  # the page when a send could not be timed
_LOGIN = re.compile(r"log in as\s+(\S+)\s+/\s+(\S+)")


@dataclass(frozen=True)
class BrowserSends:
    seconds: list[float]  # one per counted send, in order
    warmup_s: float
    failures: list[str]


@dataclass
class _System:
    url: str
    database_url: str
    email: str
    password: str


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRM_SECRET_KEY", "CRM_EMBEDDED_DATABASE")}
    env.update(CRM_DATA_DIR=str(tmp / "data"), EMBEDDED_PG_PORT=str(free_port()), WEBHOOK_PORT=str(free_port()),
               DASHBOARD_PORT=str(free_port()), SANDBOX_URL=f"http://127.0.0.1:{free_port()}", PYTHONUNBUFFERED="1")
    return env


@contextmanager
def running_system(tmp: Path) -> Iterator[_System]:
    """`python -m crm up` on its own data folder and ports; stopped (its process group) on exit."""
    env = _env(tmp)
    log_path = tmp / "crm-up.log"
    proc = subprocess.Popen([sys.executable, "-m", "crm", "up"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    found: dict[str, str] = {}
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        with log_path.open("w", encoding="utf-8") as out:
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                out.write(line)
                m = _LOGIN.search(line)
                if m:
                    found.update(email=m.group(1), password=m.group(2))
                    ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT_S) or "email" not in found:
            raise RuntimeError("`crm up` printed no login: " + log_path.read_text(errors="replace")[-2000:])
        url = f"http://127.0.0.1:{env['DASHBOARD_PORT']}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pg_root = tmp / "data" / "pg"
        from db.embedded import EmbeddedPostgres

        database_url = EmbeddedPostgres(root=pg_root, port=int(env["EMBEDDED_PG_PORT"])).url
        yield _System(url, database_url, found["email"], found["password"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # `crm up` stops its children and the database
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def make_draft(database_url: str, n: int) -> int:
    """A draft on a demo customer's job, with three lines, as the line editor saves them."""
    from crm.send.lines import Line
    from db.drafts import create_draft, replace_lines

    with psycopg.connect(database_url, autocommit=False, row_factory=dict_row) as conn:
        job = conn.execute(
            "SELECT j.id FROM crm.jobs j JOIN crm.customers c ON c.id = j.customer_id "
            "WHERE c.email IS NOT NULL AND c.email <> '' ORDER BY j.id LIMIT 1 OFFSET %s", (n,)).fetchone()
        assert job is not None, "the demo business has too few jobs"
        invoice = create_draft(conn, int(job["id"]), "standard", None, "usd", "bench")
        lines = [Line("Service call", 1, 8900), Line("Labour (hour)", 2, 12000), Line("Parts", 3, 2450)]
        replace_lines(conn, invoice, lines, sum(ln.quantity * ln.unit_amount_cents for ln in lines), "bench")
        conn.commit()
    return invoice


def _log_in(page: Any, system: _System) -> None:
    page.get_by_role("textbox", name="Email").fill(system.email)
    page.get_by_role("textbox", name="Password").fill(system.password)
    page.get_by_role("button", name="Log in").click()


def _time_one_send(browser: Any, system: _System, invoice_id: int) -> float:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{system.url}/?invoice={invoice_id}")
        page.get_by_role("textbox", name="Email").or_(page.get_by_role("button", name="Send via Stripe")).wait_for()
        if page.get_by_role("textbox", name="Email").count():
            _log_in(page, system)
        send = page.get_by_role("button", name="Send via Stripe")
        try:
            send.wait_for(timeout=15_000)
        except Exception:  # noqa: BLE001 - the link's invoice was not opened (lost at login): open the newest row
            grid = page.get_by_test_id("stDataFrame").first
            grid.click(position={"x": 18, "y": 52})
            send.wait_for()
        page.get_by_role("heading", name=re.compile(rf"#{invoice_id}\b")).first.wait_for()
        send.click()
        confirm = page.get_by_role("button", name="Confirm send")
        confirm.wait_for()
        pay_link = page.locator("code", has_text="/i/in_")
        started = time.perf_counter()
        confirm.click()
        pay_link.first.wait_for(state="visible")
        return time.perf_counter() - started
    except Exception:
        FAILURE_SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(FAILURE_SHOT), full_page=True)
        raise
    finally:
        context.close()


def run(sends: int = 12) -> BrowserSends:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-send-browser-"))
    try:
        with running_system(tmp) as system, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox",
                                                                         "--disable-gpu"])
            try:
                # Log in once so the first page's imports are paid before anything is timed.
                warm_page = browser.new_page()
                warm_page.goto(system.url)
                warm_page.get_by_role("textbox", name="Email").wait_for(timeout=120_000)
                warm_page.close()
                warmup = _time_one_send(browser, system, make_draft(system.database_url, 0))
                seconds, failures = [], []
                for n in range(1, sends + 1):
                    invoice = make_draft(system.database_url, n)
                    try:
                        seconds.append(_time_one_send(browser, system, invoice))
                    except Exception as exc:  # noqa: BLE001 - reported, the others still run
                        failures.append(f"invoice {invoice}: {type(exc).__name__}: {str(exc)[:200]}")
                    print(f"  browser send {n}/{sends}: "
                          f"{seconds[-1] if len(seconds) + len(failures) == n and seconds else float('nan'):.2f} s",
                          flush=True)
            finally:
                browser.close()
        return BrowserSends(seconds, warmup, failures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    result = run(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
    print(result)
