"""The layers written down in pyproject.toml ([tool.importlinter]) hold, so `make test`
(what CI runs) fails when a lower layer imports a higher one.

dashboard.py and pages/ are Streamlit scripts, not a package, so import-linter cannot
see them: their imports are checked here with `ast` (only ui, crm and db of ours).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUR_PACKAGES = {"bench", "crm", "db", "ops", "sandbox", "tests", "ui", "webhook"}
PAGES_MAY_IMPORT = {"ui", "crm", "db"}


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def our_imports(path: Path) -> set[str]:
    """The top-level packages of ours that a file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OUR_PACKAGES


def test_the_entry_file_and_pages_import_only_ui_crm_and_db() -> None:
    scripts = [ROOT / "dashboard.py", ROOT / "serve.py", *sorted((ROOT / "pages").glob("*.py"))]
    assert len(scripts) > 1
    wrong = {p.relative_to(ROOT).as_posix(): sorted(our_imports(p) - PAGES_MAY_IMPORT) for p in scripts}
    assert {name: found for name, found in wrong.items() if found} == {}
