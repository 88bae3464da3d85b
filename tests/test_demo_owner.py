"""`crm up`'s demo owner: only on the embedded database, its password printed only while it
is still the password, and Streamlit never shows a traceback to a user."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops import supervisor

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    return tmp_path


def test_a_deployment_database_never_gets_the_demo_owner(db: psycopg.Connection[Any], data_dir: Path) -> None:
    assert supervisor.ensure_demo_owner(embedded=False) is None
    assert db.execute("SELECT count(*) AS n FROM crm.app_users").fetchone() == {"n": 0}
    assert not (data_dir / "demo-owner.txt").exists()


def test_the_demo_password_is_printed_only_while_it_is_still_the_password(
        db: psycopg.Connection[Any], data_dir: Path) -> None:
    from crm.users.admin import reset_password

    first = supervisor.ensure_demo_owner(embedded=True)
    assert first is not None and first[0] == supervisor.DEMO_OWNER
    assert (data_dir / "demo-owner.txt").stat().st_mode & 0o077 == 0
    assert supervisor.ensure_demo_owner(embedded=True) == first, "the same login on the next start"
    owner = db.execute("SELECT id FROM crm.app_users").fetchone()
    assert owner is not None
    reset_password(db, supervisor.DEMO_OWNER, owner["id"], "the owner's own password")
    assert supervisor.ensure_demo_owner(embedded=True) is None
    assert not (data_dir / "demo-owner.txt").exists(), "a stale plaintext password is not kept"
    assert db.execute("SELECT count(*) AS n FROM crm.app_users").fetchone() == {"n": 1}


def test_streamlit_shows_users_no_error_details(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit import config

    monkeypatch.chdir(ROOT)
    config.get_config_options(force_reparse=True)
    try:
        assert config.get_option("client.showErrorDetails") == "none"
    finally:
        os.chdir(ROOT)
        config.get_config_options(force_reparse=True)
