"""The accountant's export: invoices, payments, Stripe fees, refunds and disputes of a date
range as CSV files laid out for QuickBooks Online's import (Settings → Import data).

- `invoices.csv`: QuickBooks Online's *Invoices* import, one row per invoice line; rows of
  one invoice share its InvoiceNo, Customer, InvoiceDate and DueDate.
- `payments.csv`, `fees.csv`, `refunds.csv`, `disputes.csv`: QuickBooks Online's *Journal
  entries* import (it has no import for received payments, fees or refunds); the rows of one
  JournalNo are one balanced entry (debits = credits).

Dates are the business's local dates (MM/DD/YYYY, QuickBooks' US format); money is a decimal
string in the currency's units made from integer minor units (crm.money.amounts.decimal_amount),
without symbols or separators. Text a spreadsheet would evaluate is neutralised
(crm/money/csv_cells.py). docs/FEATURES.md lists every column and what fills it.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crm.money.amounts import decimal_amount
from crm.money.csv_cells import csv_text
from db import queries_export as q
from db.pool import Conn

INVOICE_COLUMNS = ("InvoiceNo", "Customer", "InvoiceDate", "DueDate", "Terms", "Memo", "Item(Product/Service)",
                   "ItemDescription", "ItemQuantity", "ItemRate", "ItemAmount", "Currency")
JOURNAL_COLUMNS = ("JournalNo", "JournalDate", "AccountName", "Debits", "Credits", "Description", "Name",
                   "Currency")
DATE_FORMAT = "%m/%d/%Y"

# The QuickBooks products/services item every line is booked to, and the accounts of the
# journal entries: rename them here (or in QuickBooks) so they match the chart of accounts.
ITEM = "Services"
CLEARING = "Stripe Clearing"  # a bank-type account: Stripe's balance before payouts
UNDEPOSITED = "Undeposited Funds"  # cash and checks received outside Stripe, until banked
RECEIVABLE = "Accounts Receivable (A/R)"
FEES = "Stripe Fees"  # expense
REFUNDS = "Refunds"  # contra-income (or Sales Returns and Allowances)
CHARGEBACKS = "Chargebacks"  # expense while disputed or lost

FILES = ("invoices.csv", "payments.csv", "fees.csv", "refunds.csv", "disputes.csv")


class ExportError(ValueError):
    pass


@dataclass
class ExportResult:
    start: date
    end: date
    tz: str
    files: dict[str, str] = field(default_factory=dict)  # name -> CSV text
    counts: dict[str, int] = field(default_factory=dict)  # name -> rows (invoices: invoices, journals: entries)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> currency -> minor units
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        out = [f"{self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} ({self.tz} days)"]
        for name in FILES:
            amounts = ", ".join(f"{decimal_amount(v, cur)} {cur.upper()}"
                                for cur, v in sorted(self.totals.get(name, {}).items())) or "0.00"
            n = self.counts.get(name, 0)
            noun = ("invoice" if name == "invoices.csv" else "entry") if n == 1 else (
                "invoices" if name == "invoices.csv" else "entries")
            out.append(f"{name}: {n} {noun}, {amounts}")
        return out + self.notes

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.files.items():
            path = out_dir / name
            path.write_text(text, encoding="utf-8", newline="")
            paths.append(path)
        return paths

    def zip_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, text in self.files.items():
                zf.writestr(name, text)
        return buf.getvalue()


def window(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """[local midnight of start, local midnight after end)."""
    if end < start:
        raise ExportError(f"the range ends ({end}) before it starts ({start})")
    zone = ZoneInfo(tz)
    return datetime.combine(start, time(), zone), datetime.combine(end + timedelta(days=1), time(), zone)


def _local(value: datetime, tz: str) -> str:
    return f"{value.astimezone(ZoneInfo(tz)):{DATE_FORMAT}}"


def _add(totals: dict[str, int], currency: str, cents: int) -> None:
    totals[currency] = totals.get(currency, 0) + cents


def _entry(number: str, day: str, debit: str, credit: str, cents: int, currency: str, description: str,
           debit_name: str = "", credit_name: str = "") -> list[dict[str, Any]]:
    """One balanced journal entry: two rows, the same amount on each side."""
    amount = decimal_amount(cents, currency)
    cur = currency.upper()
    return [
        {"JournalNo": number, "JournalDate": day, "AccountName": debit, "Debits": amount, "Credits": "",
         "Description": description, "Name": debit_name, "Currency": cur},
        {"JournalNo": number, "JournalDate": day, "AccountName": credit, "Debits": "", "Credits": amount,
         "Description": description, "Name": credit_name, "Currency": cur},
    ]


def build_export(conn: Conn, start: date, end: date, tz: str) -> ExportResult:
    since, until = window(start, end, tz)
    res = ExportResult(start, end, tz)

    rows: list[dict[str, Any]] = []
    invoices: set[int] = set()
    totals: dict[str, int] = {}
    for ln in q.invoice_lines(conn, since, until):
        invoices.add(int(ln["invoice_id"]))
        _add(totals, ln["currency"], int(ln["amount_cents"]))
        rows.append({
            "InvoiceNo": ln["number"], "Customer": ln["customer"], "InvoiceDate": _local(ln["sent_at"], tz),
            "DueDate": f"{ln['due_date']:{DATE_FORMAT}}" if ln["due_date"] else _local(ln["sent_at"], tz),
            "Terms": "", "Memo": f"{ln['job_title']} (CRM invoice #{ln['invoice_id']}, {ln['status']})",
            "Item(Product/Service)": ITEM, "ItemDescription": ln["description"], "ItemQuantity": ln["quantity"],
            "ItemRate": decimal_amount(int(ln["unit_amount_cents"]), ln["currency"]),
            "ItemAmount": decimal_amount(int(ln["amount_cents"]), ln["currency"]), "Currency": ln["currency"].upper(),
        })
    res.files["invoices.csv"], res.counts["invoices.csv"], res.totals["invoices.csv"] = (
        csv_text(INVOICE_COLUMNS, rows), len(invoices), totals)

    pay_rows: list[dict[str, Any]] = []
    fee_rows: list[dict[str, Any]] = []
    pay_totals: dict[str, int] = {}
    fee_totals: dict[str, int] = {}
    fee_entries = unknown_fees = 0
    payments = q.payments(conn, since, until)
    for p in payments:
        day, cur = _local(p["paid_at"], tz), str(p["currency"])
        _add(pay_totals, cur, int(p["amount_cents"]))
        outside = p["method"] == "out_of_band"
        pay_rows += _entry(f"PAY-{p['id']}", day, UNDEPOSITED if outside else CLEARING, RECEIVABLE,
                           int(p["amount_cents"]), cur,
                           f"{'Cash or check payment' if outside else 'Payment'} of invoice {p['number']} "
                           f"({p['stripe_payment_id']})", credit_name=p["customer"])
        if p["fee_cents"] is None:
            unknown_fees += 1
        elif int(p["fee_cents"]) > 0:
            fee_entries += 1
            _add(fee_totals, cur, int(p["fee_cents"]))
            fee_rows += _entry(f"FEE-{p['id']}", day, FEES, CLEARING, int(p["fee_cents"]), cur,
                               f"Stripe fee on the payment of invoice {p['number']}")
    res.files["payments.csv"], res.counts["payments.csv"], res.totals["payments.csv"] = (
        csv_text(JOURNAL_COLUMNS, pay_rows), len(payments), pay_totals)
    res.files["fees.csv"], res.counts["fees.csv"], res.totals["fees.csv"] = (
        csv_text(JOURNAL_COLUMNS, fee_rows), fee_entries, fee_totals)
    if unknown_fees:
        res.notes.append(f"{unknown_fees} payment(s) without a Stripe fee recorded yet: not in fees.csv.")

    ref_rows: list[dict[str, Any]] = []
    ref_totals: dict[str, int] = {}
    refunds = q.refunds(conn, since, until)
    for r in refunds:
        cur = str(r["currency"])
        _add(ref_totals, cur, int(r["amount_cents"]))
        ref_rows += _entry(f"REF-{r['id']}", _local(r["refunded_at"], tz), REFUNDS, CLEARING, int(r["amount_cents"]),
                           cur, f"Refund on invoice {r['number']} ({r['stripe_refund_id']})"
                           + (f": {r['reason']}" if r["reason"] else ""), debit_name=r["customer"])
    res.files["refunds.csv"], res.counts["refunds.csv"], res.totals["refunds.csv"] = (
        csv_text(JOURNAL_COLUMNS, ref_rows), len(refunds), ref_totals)

    dis_rows: list[dict[str, Any]] = []
    dis_totals: dict[str, int] = {}
    moves = q.dispute_moves(conn, since, until)
    for d in moves:
        cur, cents = str(d["currency"]), int(d["amount_cents"])
        name = d["customer"] or ""
        if d["move"] == "opened":
            _add(dis_totals, cur, cents)
            dis_rows += _entry(f"DSP-{d['id']}", _local(d["at"], tz), CHARGEBACKS, CLEARING, cents, cur,
                               f"Dispute {d['stripe_dispute_id']} opened on invoice {d['number']}"
                               + (f" ({d['reason']})" if d["reason"] else ""), debit_name=name)
        else:  # won: Stripe gives the amount back
            _add(dis_totals, cur, -cents)
            dis_rows += _entry(f"DSPW-{d['id']}", _local(d["at"], tz), CLEARING, CHARGEBACKS, cents, cur,
                               f"Dispute {d['stripe_dispute_id']} won on invoice {d['number']}", credit_name=name)
    res.files["disputes.csv"], res.counts["disputes.csv"], res.totals["disputes.csv"] = (
        csv_text(JOURNAL_COLUMNS, dis_rows), len(moves), dis_totals)
    if not q.disputes_available(conn):
        res.notes.append("disputes.csv is empty: this database has no disputes table yet.")
    return res


def export_to(conn: Conn, start: date, end: date, tz: str, out_dir: Path) -> tuple[ExportResult, list[Path]]:
    res = build_export(conn, start, end, tz)
    return res, res.write(out_dir)
