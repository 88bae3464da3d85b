"""The schema's guarantees: RLS everywhere, checked statuses, integer money, unique ids."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest


def _one(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _customer_job(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    customer = _one(conn, "INSERT INTO crm.customers (name, email) VALUES ('Ann', 'ann@example.com') RETURNING id")
    job = _one(conn, "INSERT INTO crm.jobs (customer_id, title) VALUES (%s, 'Fix sink') RETURNING id", (customer,))
    return customer, job


def test_every_table_has_row_level_security(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'crm' AND c.relkind = 'r'"
    ).fetchall()
    assert len(rows) >= 16
    assert [r["relname"] for r in rows if not r["relrowsecurity"]] == []


def test_tables_live_outside_public(db: psycopg.Connection[Any]) -> None:
    public = db.execute(
        "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
        "('customers', 'invoices', 'jobs', 'stripe_events')"
    ).fetchone()
    assert public == {"n": 0}


def test_every_status_column_has_a_check(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        """
        SELECT c.table_name, c.column_name,
               EXISTS (SELECT 1 FROM pg_constraint k
                       WHERE k.conrelid = format('crm.%I', c.table_name)::regclass AND k.contype = 'c'
                         AND pg_get_constraintdef(k.oid) LIKE '%' || c.column_name || '%') AS checked
        FROM information_schema.columns c
        WHERE c.table_schema = 'crm' AND (c.column_name IN ('status', 'outcome', 'role', 'mode', 'kind')
                                          OR c.column_name LIKE '%status')
          -- the audit log records other tables' statuses; those tables check them
          AND c.table_name <> 'audit_log'
        """
    ).fetchall()
    assert {r["table_name"] for r in rows} >= {"invoices", "jobs", "reminders", "email_messages", "stripe_events"}
    assert [f"{r['table_name']}.{r['column_name']}" for r in rows if not r["checked"]] == []


def test_money_columns_are_integers(db: psycopg.Connection[Any]) -> None:
    rows = db.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'crm' AND column_name LIKE '%cents'"
    ).fetchall()
    assert len(rows) >= 9
    assert {r["data_type"] for r in rows} == {"bigint"}


def test_negative_amount_is_rejected(db: psycopg.Connection[Any]) -> None:
    customer, job = _customer_job(db)
    invoice = _one(db, "INSERT INTO crm.invoices (job_id, customer_id) VALUES (%s, %s) RETURNING id", (job, customer))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
            "VALUES (%s, 0, 'Labor', 1, -500)",
            (invoice,),
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE crm.invoices SET amount_due_cents = -1 WHERE id = %s", (invoice,))
    assert _one(db, "SELECT amount_due_cents FROM crm.invoices WHERE id = %s", (invoice,)) == 0


def test_unknown_status_is_rejected(db: psycopg.Connection[Any]) -> None:
    customer, job = _customer_job(db)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO crm.invoices (job_id, customer_id, status) VALUES (%s, %s, 'overdue')", (job, customer))
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE crm.jobs SET status = 'done' WHERE id = %s", (job,))


def test_duplicate_stripe_ids_are_rejected(db: psycopg.Connection[Any]) -> None:
    customer, job = _customer_job(db)
    db.execute("UPDATE crm.customers SET stripe_customer_id_test = 'cus_123' WHERE id = %s", (customer,))
    other = _one(db, "INSERT INTO crm.customers (name) VALUES ('Bob') RETURNING id")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("UPDATE crm.customers SET stripe_customer_id_test = 'cus_123' WHERE id = %s", (other,))
    for _ in range(2):
        db.execute(
            "INSERT INTO crm.invoices (job_id, customer_id, status, mode, stripe_invoice_id, sent_at) "
            "VALUES (%s, %s, 'open', 'test', 'in_dup', now()) ON CONFLICT DO NOTHING",
            (job, customer),
        )
    assert _one(db, "SELECT count(*) FROM crm.invoices WHERE stripe_invoice_id = 'in_dup'") == 1
    payload = '{"id": "evt_1"}'
    db.execute(
        "INSERT INTO crm.stripe_events (id, type, mode, outcome, payload) VALUES ('evt_1', 'x', 'test', 'ignored', %s)",
        (payload,),
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "INSERT INTO crm.stripe_events (id, type, mode, outcome, payload) "
            "VALUES ('evt_1', 'x', 'test', 'ignored', %s)",
            (payload,),
        )


def test_invoice_cannot_belong_to_another_customers_job(db: psycopg.Connection[Any]) -> None:
    _, job = _customer_job(db)
    stranger = _one(db, "INSERT INTO crm.customers (name) VALUES ('Eve') RETURNING id")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("INSERT INTO crm.invoices (job_id, customer_id) VALUES (%s, %s)", (job, stranger))


def test_line_amount_is_computed_in_integer_cents(db: psycopg.Connection[Any]) -> None:
    customer, job = _customer_job(db)
    invoice = _one(db, "INSERT INTO crm.invoices (job_id, customer_id) VALUES (%s, %s) RETURNING id", (job, customer))
    db.execute(
        "INSERT INTO crm.invoice_lines (invoice_id, position, description, quantity, unit_amount_cents) "
        "VALUES (%s, 0, 'Vent cleaning', 3, 3333)",
        (invoice,),
    )
    assert _one(db, "SELECT amount_cents FROM crm.invoice_lines WHERE invoice_id = %s", (invoice,)) == 9999


def test_pg_cron_job_is_registered(db: psycopg.Connection[Any], pg_cron: None) -> None:
    row = db.execute("SELECT schedule, command FROM cron.job WHERE jobname = 'crm-queue-due-reminders'").fetchone()
    assert row is not None
    assert "crm.queue_due_reminders" in row["command"]
