"""Which measured parts are on main: a part counts only once its files are committed.

Teammates' work in progress sits untracked in the same tree; measuring it would report
numbers for code nobody has reviewed, so the bench asks git what HEAD holds. Outside a git
checkout (a tarball) every file present counts.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Part:
    key: str
    title: str
    paths: tuple[str, ...]  # all of them must be on main
    sql_function: str | None = None  # the SQL function it measures (defined in the functions file named)


PARTS: dict[str, Part] = {
    "webhook": Part("webhook", "Webhook sidecar", ("db/functions/60_stripe_events.sql", "webhook/app.py"),
                    "crm.apply_stripe_event"),
    "dashboard": Part("dashboard", "Dashboard data", ("db/queries_collections.py", "db/queries_invoices.py")),
    "queue": Part("queue", "Reminder queueing", ("db/functions/40_reminders.sql",), "crm.queue_due_reminders"),
    "send": Part("send", "Send via Stripe", ("crm/send/workflow.py", "crm/stripe/gateway.py", "sandbox/testing.py")),
}


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def in_git() -> bool:
    try:
        return _git("rev-parse", "--is-inside-work-tree").stdout.strip() == "true"
    except FileNotFoundError:
        return False


def on_main(path: str) -> bool:
    if not in_git():
        return (ROOT / path).exists()
    return _git("cat-file", "-e", f"HEAD:{path}").returncode == 0


def missing(part: Part) -> list[str]:
    """The part's files not on main yet (empty: the part can be measured)."""
    return [p for p in part.paths if not on_main(p)]


def committed_sql(folder: str, dest: Path) -> Path:
    """Copy the .sql files HEAD holds under `folder` (their committed text) into dest.

    Untracked files of work in progress are left out so a half-written file cannot break
    the bench's database.
    """
    src = ROOT / folder
    dest.mkdir(parents=True, exist_ok=True)
    if not in_git():
        for f in sorted(src.glob("*.sql")):
            (dest / f.name).write_bytes(f.read_bytes())
        return dest
    listed = _git("ls-tree", "--name-only", "HEAD", f"{folder}/").stdout.split()
    for name in listed:
        if name.endswith(".sql"):
            text = _git("show", f"HEAD:{name}").stdout
            (dest / Path(name).name).write_text(text, encoding="utf-8")
    return dest


def committed_text(path: str) -> str:
    """The text HEAD holds at `path` ('' when it holds none, or outside git)."""
    if not in_git():
        return ""
    done = _git("show", f"HEAD:{path}")
    return done.stdout if done.returncode == 0 else ""


def head_commit() -> str:
    if not in_git():
        return "(not a git checkout)"
    return _git("log", "-1", "--format=%h %s").stdout.strip()
