"""The layers written down in pyproject.toml ([tool.importlinter]) hold, so `make test`
(what CI runs) fails when a lower layer imports a higher one.

dashboard.py and pages/ are Streamlit scripts, not a package, so import-linter cannot
see them: their imports are checked here with `ast` (only ui, crm and db of ours).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
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
    scripts = [ROOT / "dashboard.py", *sorted((ROOT / "pages").glob("*.py"))]
    assert len(scripts) > 1
    wrong = {p.relative_to(ROOT).as_posix(): sorted(our_imports(p) - PAGES_MAY_IMPORT) for p in scripts}
    assert {name: found for name, found in wrong.items() if found} == {}


# db/'s query modules: they only read. Every other db module writes (or runs pools, migrations,
# roles) and is forbidden to ui/ by the `ui-writes-through-crm` contract in pyproject.toml.
def is_query_module(name: str) -> bool:
    return name == "db.pool" or name.startswith("db.queries_")


# Reads the pages still take from a db module that also writes. Adding a name here is adding a
# read; a write goes through crm/ (crm/records/edits.py and the workflows).
READS_FROM_WRITE_MODULES = {
    "db.customers": {"count_customers", "customer_choices", "customer_invoices", "customer_jobs",
                     "customer_timeline", "get_customer", "list_customers"},
    "db.jobs": {"JOB_STATUSES", "get_job", "job_choices", "job_completion", "job_invoices", "list_jobs"},
    "db.drafts": {"KINDS"},
    "db.users": {"list_users"},
}


def db_names_used(path: Path) -> set[tuple[str, str]]:
    """(db module, name) for every name a script takes from a db module other than db itself:
    `from db.x import y` gives (db.x, y); `from db import x as m` then `m.y` gives (db.x, y)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases: dict[str, str] = {}
    used: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "db":
                aliases.update({a.asname or a.name: f"db.{a.name}" for a in node.names})
            elif node.module.startswith("db."):
                used.update((node.module, a.name) for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("db.") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            used.add((aliases[node.value.id], node.attr))
    return used


def test_the_ui_contract_names_every_db_module_that_is_not_a_query_module() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    contract = next(c for c in config if c["id"] == "ui-writes-through-crm")
    modules = {f"db.{p.stem}" for p in (ROOT / "db").glob("*.py") if p.stem != "__init__"}
    assert set(contract["forbidden_modules"]) == {m for m in modules if not is_query_module(m)}


def test_pages_read_through_db_and_write_only_through_crm() -> None:
    """pages/ are scripts, so import-linter cannot see them: the same rule as the ui contract,
    with the reads still taken from modules that also write listed above."""
    wrong = {}
    for page in [*sorted((ROOT / "pages").glob("*.py")), ROOT / "dashboard.py"]:
        found = sorted(f"{module}.{name}" for module, name in db_names_used(page)
                       if not is_query_module(module) and name not in READS_FROM_WRITE_MODULES.get(module, set()))
        if found:
            wrong[page.relative_to(ROOT).as_posix()] = found
    assert wrong == {}


def test_the_pages_check_sees_a_write(tmp_path: Path) -> None:
    """The check above fails on what pages/customers.py did before crm/records/edits.py."""
    page = tmp_path / "page.py"
    page.write_text("from db import customers as c\nfrom db.jobs import update_job\n"
                    "c.create_customer(conn, data, 'x')\n")
    assert db_names_used(page) == {("db.customers", "create_customer"), ("db.jobs", "update_job")}
