"""Migrations: applied once, in order, idempotent, safe when two runners race."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from db.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate


def _applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM crm.schema_migrations ORDER BY version")]


def test_second_migrate_changes_nothing(scratch_database: str) -> None:
    first = migrate(scratch_database)
    assert first == [m.path.name for m in discover()]
    with psycopg.connect(scratch_database) as conn:
        before = conn.execute("SELECT version, applied_at FROM crm.schema_migrations ORDER BY 1").fetchall()
    assert migrate(scratch_database) == []
    with psycopg.connect(scratch_database) as conn:
        after = conn.execute("SELECT version, applied_at FROM crm.schema_migrations ORDER BY 1").fetchall()
    assert before == after


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
    # The runners may take turns migration by migration; each file is applied by exactly one.
    applied_by_both = [name for r in results for name in r]
    assert sorted(applied_by_both) == [m.path.name for m in discover()]
    assert _applied_versions(scratch_database) == [m.version for m in discover()]


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
    assert "9999" not in _applied_versions(scratch_database)
