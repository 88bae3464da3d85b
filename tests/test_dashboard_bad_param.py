"""A bad or stale link (`?invoice=abc`, `?customer=999999`, `?job=x`) says "No such invoice"
(customer, job) and shows the page's list; the page never stops with an error.

Failed on the code before the fix (checked by hand): `?invoice=abc` stopped the page with
"This app has encountered an error" (int('abc')), and the other parameters were ignored.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.fixtures.dashboard import APP_TIMEOUT, ROOT, session_for
from tests.fixtures.sidecar import seed_invoice

CASES = [("pages/invoices.py", "invoice", "abc", "No such invoice. Pick one from the list."),
         ("pages/invoices.py", "invoice", "999999", "No such invoice #999999. Pick one from the list."),
         ("pages/customers.py", "customer", "1 OR 1=1", "No such customer. Pick one from the list."),
         ("pages/customers.py", "customer", "999999", "No such customer #999999. Pick one from the list."),
         ("pages/jobs.py", "job", "[x](https://evil.example)", "No such job. Pick one from the list."),
         ("pages/jobs.py", "job", "999999", "No such job #999999. Pick one from the list.")]


@pytest.mark.parametrize(("page", "param", "value", "message"), CASES)
def test_bad_param_says_no_such_record_and_shows_the_list(
        db: psycopg.Connection[Any], dashboard_users: dict[str, int], page: str, param: str, value: str,
        message: str) -> None:
    from streamlit.testing.v1 import AppTest

    seed_invoice(db)  # one customer, job and invoice: each page has a list to show
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=APP_TIMEOUT)
    at.session_state["crm_session"] = session_for("staff", dashboard_users["staff"])
    at.query_params[param] = value
    at.switch_page(page).run()

    assert not at.exception, [e.value for e in at.exception]
    assert message in [w.value for w in at.warning], [w.value for w in at.warning]
    assert at.dataframe, "the page's list is shown"
    assert f"open_{param}" not in at.session_state
