"""The dead-code check (`make lint` runs the same command) holds in `make test`, so CI sees
it: vulture over the production code, with vulture_whitelist.py naming what is used only by
tests, benchmarks or a library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEAD_CODE_PATHS = ["crm", "db", "ui", "webhook", "ops", "pages", "dashboard.py", "vulture_whitelist.py"]


def test_no_dead_code() -> None:
    vulture = Path(sys.executable).with_name("vulture")
    done = subprocess.run([str(vulture), *DEAD_CODE_PATHS, "--min-confidence", "60"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_make_lint_runs_the_same_check() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "vulture " + " ".join(DEAD_CODE_PATHS) + " --min-confidence 60" in makefile
    assert "lint-imports --no-cache" in makefile
