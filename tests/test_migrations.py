"""Migrations and functions files: applied once, in order, idempotent, safe when two runners
race; a changed functions file is re-applied; a database migrated before the baseline ends
with exactly the schema and functions of a fresh one."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from db.migrate import (
    FUNCTIONS_DIR,
    LEGACY_MIGRATIONS,
    MIGRATIONS_DIR,
    MigrationError,
    discover,
    discover_functions,
    migrate,
)

ROOT = Path(__file__).resolve().parent.parent
# The last main before the baseline: its db/migrate.py and db/migrations/0001-0011.
PRE_BASELINE_COMMIT = "234a687"


def _everything() -> list[str]:
    return [m.path.name for m in discover()] + [f"functions/{f.key}" for f in discover_functions()]


def _applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM crm.schema_migrations ORDER BY version")]


def test_second_migrate_changes_nothing(scratch_database: str) -> None:
    first = migrate(scratch_database)
    assert first == _everything()
    with psycopg.connect(scratch_database) as conn:
        before = conn.execute("SELECT version, applied_at FROM crm.schema_migrations ORDER BY 1").fetchall()
        before_fn = conn.execute("SELECT file, applied_at FROM crm.schema_functions ORDER BY 1").fetchall()
    assert migrate(scratch_database) == []
    with psycopg.connect(scratch_database) as conn:
        after = conn.execute("SELECT version, applied_at FROM crm.schema_migrations ORDER BY 1").fetchall()
        after_fn = conn.execute("SELECT file, applied_at FROM crm.schema_functions ORDER BY 1").fetchall()
    assert before == after
    assert before_fn == after_fn


def test_two_concurrent_runners_apply_the_schema_once(scratch_database: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            results.append(migrate(scratch_database))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # One runner waits on the advisory lock, then finds everything applied.
    applied_by_both = [name for r in results for name in r]
    assert sorted(applied_by_both) == sorted(_everything())
    assert _applied_versions(scratch_database) == [m.key for m in discover()]


def test_an_edited_migration_is_refused(scratch_database: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    migrate(scratch_database, folder)
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(scratch_database, folder)


def test_a_failing_migration_leaves_nothing_behind(scratch_database: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    (folder / "9999_broken.sql").write_text("CREATE TABLE crm.half_done (id int); SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(scratch_database, folder)
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT to_regclass('crm.half_done')").fetchone() == (None,)
        # The whole run is one transaction: not even the baseline stayed.
        assert conn.execute("SELECT to_regclass('crm.invoices')").fetchone() == (None,)


def test_a_changed_functions_file_is_reapplied_and_the_others_skipped(scratch_database: str, tmp_path: Path) -> None:
    functions = tmp_path / "functions"
    shutil.copytree(FUNCTIONS_DIR, functions)
    migrate(scratch_database, MIGRATIONS_DIR, functions)
    target = functions / "80_reconcile.sql"
    target.write_text(target.read_text().replace("One key per mode", "One advisory lock key per mode"))
    assert migrate(scratch_database, MIGRATIONS_DIR, functions) == ["functions/80_reconcile.sql"]
    with psycopg.connect(scratch_database) as conn:
        body = conn.execute("SELECT pg_get_functiondef('crm.reconcile_lock_key'::regproc)").fetchone()
        assert body is not None
        held = conn.execute("SELECT checksum FROM crm.schema_functions WHERE file = '80_reconcile.sql'").fetchone()
    assert held == (discover_functions(functions)[-1].checksum,)
    assert migrate(scratch_database, MIGRATIONS_DIR, functions) == []


def test_a_failing_functions_file_leaves_the_old_definitions(scratch_database: str, tmp_path: Path) -> None:
    functions = tmp_path / "functions"
    shutil.copytree(FUNCTIONS_DIR, functions)
    migrate(scratch_database, MIGRATIONS_DIR, functions)
    with psycopg.connect(scratch_database) as conn:
        before = conn.execute("SELECT pg_get_functiondef('crm.reconcile_lock_key'::regproc)").fetchone()
    (functions / "80_reconcile.sql").write_text(
        "CREATE OR REPLACE FUNCTION crm.reconcile_lock_key(p_mode text) RETURNS bigint LANGUAGE sql AS $$ SELECT 1 $$;"
        "SELECT no_such_function();")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrate(scratch_database, MIGRATIONS_DIR, functions)
    with psycopg.connect(scratch_database) as conn:
        after = conn.execute("SELECT pg_get_functiondef('crm.reconcile_lock_key'::regproc)").fetchone()
    assert after == before


# ---- one definition of each function ---------------------------------------------------

_DEFINITION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|TRIGGER|VIEW)\s+([\w.]+)", re.IGNORECASE)


def _definitions() -> list[tuple[str, str, str]]:
    """(kind, name, file) for every function, trigger and view any SQL of ours defines."""
    found: list[tuple[str, str, str]] = []
    sources = list(ROOT.glob("db/**/*.sql"))
    for top in ROOT.iterdir():
        if top.is_dir() and not top.name.startswith(".") and top.name != "tests":
            sources.extend(top.rglob("*.py"))
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for kind, name in _DEFINITION.findall(text):
            found.append((kind.upper(), name.lower(), str(path.relative_to(ROOT))))
    return found


def test_each_crm_function_is_defined_in_exactly_one_file() -> None:
    defs = _definitions()
    assert defs, "the scan found no definitions at all: the pattern is broken"
    counts = Counter((kind, name) for kind, name, _ in defs)
    twice = {f"{kind} {name}": [f for k, n, f in defs if (k, n) == (kind, name)]
             for (kind, name), n in counts.items() if n > 1}
    assert twice == {}, f"defined more than once: {twice}"
    outside = [f"{kind} {name} in {f}" for kind, name, f in defs if not f.startswith("db/functions/")]
    assert outside == [], "functions, triggers and views belong in db/functions/"


def test_the_database_holds_exactly_the_functions_the_files_define(database_url: str) -> None:
    defined = {name for kind, name, _ in _definitions() if kind == "FUNCTION"}
    with psycopg.connect(database_url) as conn:
        held = {f"crm.{r[0]}" for r in conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'crm'")}
    assert held == defined


# ---- baseline: a database migrated by the old main -----------------------------------------

def _catalog(url: str) -> dict[str, Any]:
    """Everything a migration decides, as text: functions, triggers, columns, constraints,
    indexes, RLS and the seeded settings."""
    queries = {
        "functions": "SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid) "
                     "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'crm'",
        "triggers": "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'crm' AND NOT t.tgisinternal",
        "columns": "SELECT table_name, column_name, ordinal_position, data_type, column_default, is_nullable, "
                   "is_identity FROM information_schema.columns WHERE table_schema = 'crm' "
                   "AND table_name NOT IN ('schema_migrations', 'schema_functions')",
        "constraints": "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
                       "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = 'crm'",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'crm'",
        "rls": "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE n.nspname = 'crm' AND c.relkind = 'r'",
        "settings": "SELECT key FROM crm.settings",
    }
    with psycopg.connect(url) as conn:
        return {name: sorted(tuple(map(str, row)) for row in conn.execute(q)) for name, q in queries.items()}


def _git_show(path: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{PRE_BASELINE_COMMIT}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def _old_main(tmp_path: Path) -> tuple[Any, Path]:
    """The pre-baseline migrator module and a folder with its 0001-0011, from git history."""
    probe = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{PRE_BASELINE_COMMIT}^{{commit}}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"needs the git history with commit {PRE_BASELINE_COMMIT} (a shallow clone lacks it)")
    folder = tmp_path / "old_migrations"
    folder.mkdir()
    for version, name in LEGACY_MIGRATIONS.items():
        path = f"db/migrations/{version}_{name}.sql"
        (folder / f"{version}_{name}.sql").write_text(_git_show(path), encoding="utf-8")
    module_path = tmp_path / "old_migrate.py"
    module_path.write_text(_git_show("db/migrate.py"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("old_migrate", module_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_migrate"] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["old_migrate"]
    return module, folder


@pytest.fixture
def second_scratch_database(pg_server: Any) -> Any:
    from db.embedded import free_port

    name = f"scratch_b_{free_port()}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_database_migrated_by_the_old_main_ends_like_a_fresh_one(
        scratch_database: str, second_scratch_database: str, tmp_path: Path) -> None:
    old, folder = _old_main(tmp_path)
    assert len(old.migrate(scratch_database, folder)) == len(LEGACY_MIGRATIONS)
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        conn.execute("INSERT INTO crm.customers (name, email) VALUES ('Kept', 'kept@example.com')")

    upgraded = migrate(scratch_database)
    assert upgraded[0].startswith("0011_baseline.sql (recognised")
    assert upgraded[1:] == [m.path.name for m in discover()][1:] + [f"functions/{f.key}" for f in discover_functions()]
    migrate(second_scratch_database)

    old_db, fresh_db = _catalog(scratch_database), _catalog(second_scratch_database)
    for part in old_db:
        assert old_db[part] == fresh_db[part], f"{part} differ between upgraded and fresh databases"
    assert _applied_versions(scratch_database) == _applied_versions(second_scratch_database) == [
        m.key for m in discover()]
    with psycopg.connect(scratch_database) as conn:
        assert conn.execute("SELECT name FROM crm.customers").fetchall() == [("Kept",)]
    assert migrate(scratch_database) == []


def test_a_database_stopped_before_0011_is_refused_with_the_way_out(scratch_database: str, tmp_path: Path) -> None:
    old, folder = _old_main(tmp_path)
    for late in ("0010_job_completion_lock.sql", "0011_collections_indexes.sql"):
        (folder / late).unlink()
    old.migrate(scratch_database, folder)
    with pytest.raises(MigrationError, match="stopped before migration 0010"):
        migrate(scratch_database)
    assert "0011" not in _applied_versions(scratch_database)
