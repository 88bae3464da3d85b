"""The connection budget the production checklist (docs/DEPLOYMENT.md) states is the one the code adds up
(db.config)."""

from __future__ import annotations

import re
from pathlib import Path

from db.config import DatabaseConfig, connection_budget

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_states_the_connection_budget_the_code_adds_up() -> None:
    defaults = DatabaseConfig(url=None, pool_min=1, pool_max=10, prepared_statements=False)
    sidecar, dashboard = connection_budget("sidecar", defaults), connection_budget("dashboard", defaults)
    readme = (ROOT / "docs" / "DEPLOYMENT.md").read_text(encoding="utf-8")
    stated = re.search(r"sidecar process opens at most \*\*(\d+)\*\*.*?dashboard process at most \*\*(\d+)\*\*",
                       readme, re.S)
    assert stated, "docs/DEPLOYMENT.md: connection budget sentence missing"
    assert (int(stated.group(1)), int(stated.group(2))) == (sidecar, dashboard)
