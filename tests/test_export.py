"""The accountant's export: `python -m crm export` for a month of demo data writes CSV files
that follow QuickBooks Online's import column rules (README, "Accountant export"), and their
totals, parsed back, are the database's."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crm.money.accounting_export import FILES, INVOICE_COLUMNS, JOURNAL_COLUMNS, ExportError, build_export, window
from crm.money.amounts import decimal_amount
from db import queries_export
from ops import seed

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TZ = "America/Chicago"
MONEY = re.compile(r"^-?\d+\.\d{2}$")
US_DATE = re.compile(r"^(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])/\d{4}$")


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _cents(text: str) -> int:
    assert MONEY.match(text), f"not a decimal amount in dollars: {text!r}"
    return int(Decimal(text) * 100)


def _day(text: str) -> date:
    assert US_DATE.match(text), f"not MM/DD/YYYY: {text!r}"
    return datetime.strptime(text, "%m/%d/%Y").date()


def check_invoices(rows: list[dict[str, str]], start: date, end: date) -> int:
    """QuickBooks' invoice import rules: required columns filled; the rows of one InvoiceNo
    agree on customer and dates; ItemAmount = ItemQuantity x ItemRate; returns the total in cents."""
    heads: dict[str, tuple[str, str, str]] = {}
    total = 0
    for r in rows:
        for col in ("InvoiceNo", "Customer", "InvoiceDate", "DueDate", "Item(Product/Service)", "ItemAmount"):
            assert r[col], f"{col} is required: {r}"
        assert len(r["InvoiceNo"]) <= 21
        assert start <= _day(r["InvoiceDate"]) <= end and _day(r["DueDate"]) >= _day(r["InvoiceDate"]) - timedelta(1)
        assert heads.setdefault(r["InvoiceNo"], (r["Customer"], r["InvoiceDate"], r["DueDate"])) == (
            r["Customer"], r["InvoiceDate"], r["DueDate"])
        qty = int(r["ItemQuantity"])
        assert qty > 0 and _cents(r["ItemAmount"]) == qty * _cents(r["ItemRate"])
        assert r["Currency"] == "USD"
        total += _cents(r["ItemAmount"])
    return total


def check_journal(rows: list[dict[str, str]], start: date, end: date) -> tuple[int, dict[str, int]]:
    """QuickBooks' journal entry import rules: each row is a debit or a credit, never both;
    the rows of one JournalNo share a date and balance; A/R rows name the customer.
    Returns the entries' total (debits) and the net per account."""
    entries: dict[str, list[dict[str, str]]] = defaultdict(list)
    by_account: dict[str, int] = defaultdict(int)
    for r in rows:
        assert r["JournalNo"] and r["AccountName"] and len(r["JournalNo"]) <= 21
        assert start <= _day(r["JournalDate"]) <= end
        assert bool(r["Debits"]) != bool(r["Credits"]), r
        if "Receivable" in r["AccountName"]:
            assert r["Name"], "an A/R line must name its customer"
        by_account[r["AccountName"]] += _cents(r["Debits"]) if r["Debits"] else -_cents(r["Credits"])
        entries[r["JournalNo"]].append(r)
    total = 0
    for number, lines in entries.items():
        assert len({ln["JournalDate"] for ln in lines}) == 1, number
        debits = sum(_cents(ln["Debits"]) for ln in lines if ln["Debits"])
        assert debits == sum(_cents(ln["Credits"]) for ln in lines if ln["Credits"]), f"{number} does not balance"
        total += debits
    return total, dict(by_account)


def test_export_month_of_demo_data_matches_the_database(db: psycopg.Connection[Any], database_url: str,
                                                         tmp_path: Path) -> None:
    seed.load(db, seed.generate(NOW), NOW)
    db.execute("INSERT INTO crm.settings (key, value) VALUES ('business.timezone', %s::jsonb)", (f'"{TZ}"',))
    # A refund in the month, so refunds.csv has something to add up.
    paid = db.execute("SELECT p.id, p.invoice_id, p.amount_cents FROM crm.payments p "
                      "WHERE p.paid_at >= '2026-05-10' AND p.paid_at < '2026-05-20' ORDER BY p.id LIMIT 1").fetchone()
    assert paid is not None
    db.execute("UPDATE crm.invoices SET amount_refunded_cents = 2500 WHERE id = %s", (paid["invoice_id"],))
    db.execute("INSERT INTO crm.refunds (invoice_id, payment_id, mode, stripe_refund_id, amount_cents, currency, "
               "status, reason, created_at) VALUES (%s, %s, 'test', 're_export_1', 2500, 'usd', 'succeeded', "
               "'requested_by_customer', '2026-05-21 15:00+00')", (paid["invoice_id"], paid["id"]))
    out = tmp_path / "may"
    env = {**os.environ, "DATABASE_URL": database_url}
    run = subprocess.run([sys.executable, "-m", "crm", "export", "--from", "2026-05-01", "--to", "2026-05-31",
                          "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)

    start, end = date(2026, 5, 1), date(2026, 5, 31)
    since, until = window(start, end, TZ)
    expected = queries_export.database_totals(db, since, until)
    columns, invoices = _read(out / "invoices.csv")
    assert tuple(columns) == INVOICE_COLUMNS
    assert len({r["InvoiceNo"] for r in invoices}) > 20
    assert check_invoices(invoices, start, end) == expected["invoiced_cents"] > 0
    totals = {}
    for name in ("payments.csv", "fees.csv", "refunds.csv", "disputes.csv"):
        columns, rows = _read(out / name)
        assert tuple(columns) == JOURNAL_COLUMNS, name
        totals[name] = check_journal(rows, start, end)
    assert totals["payments.csv"][0] == expected["paid_cents"] > 0
    assert totals["payments.csv"][1]["Accounts Receivable (A/R)"] == -expected["paid_cents"]
    assert totals["fees.csv"][0] == expected["fee_cents"] > 0
    assert totals["fees.csv"][1]["Stripe Fees"] == expected["fee_cents"]
    assert totals["refunds.csv"][0] == expected["refunded_cents"] == 2500
    # Stripe Clearing across the files: what was collected, less fees and refunds.
    clearing = sum(t[1].get("Stripe Clearing", 0) for t in totals.values())
    assert clearing == expected["paid_cents"] - expected["fee_cents"] - expected["refunded_cents"] \
        - totals["disputes.csv"][1].get("Chargebacks", 0)
    assert f"{decimal_amount(expected['paid_cents'])} USD" in run.stdout


def test_export_days_are_the_business_days(db: psycopg.Connection[Any]) -> None:
    """A payment at 02:00 UTC on June 1 is May 31 in Chicago: it belongs to May's export."""
    seed.load(db, seed.generate(NOW), NOW)
    inv = db.execute("SELECT id FROM crm.invoices WHERE status = 'open' LIMIT 1").fetchone()
    assert inv is not None
    db.execute("INSERT INTO crm.payments (invoice_id, mode, stripe_payment_id, amount_cents, fee_cents, net_cents, "
               "currency, paid_at) VALUES (%s, 'test', 'inpay_edge', 777, 0, 777, 'usd', '2026-06-01 02:00+00')",
               (inv["id"],))
    may = build_export(db, date(2026, 5, 1), date(2026, 5, 31), TZ)
    june = build_export(db, date(2026, 6, 1), date(2026, 6, 30), TZ)
    assert "inpay_edge" in may.files["payments.csv"] and "inpay_edge" not in june.files["payments.csv"]
    assert "05/31/2026" in next(ln for ln in may.files["payments.csv"].splitlines() if "inpay_edge" in ln)


def test_export_amounts_are_decimal_strings_from_minor_units() -> None:
    assert decimal_amount(123450) == "1234.50"
    assert decimal_amount(5, "usd") == "0.05"
    assert decimal_amount(-250, "eur") == "-2.50"
    assert decimal_amount(5000, "jpy") == "5000"
    with pytest.raises(ExportError):
        window(date(2026, 5, 2), date(2026, 5, 1), "UTC")


def test_owner_downloads_the_export_from_collections(db: psycopg.Connection[Any], app_as: Any) -> None:
    seed.seed_demo(db)
    at = app_as("owner", "pages/collections_page.py")
    next(b for b in at.button if b.label == "Prepare export").click().run()
    assert not at.exception
    _, data, _ = at.session_state["export_ready"]
    import io
    import zipfile

    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == sorted(FILES)
    assert any(c.value.startswith("payments.csv:") for c in at.caption)
