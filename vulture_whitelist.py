"""Names the dead-code check (vulture, `make lint` and tests/test_dead_code.py) cannot see
used: each is used by the tests, the benchmarks or a library, by name or by reflection.
Add a name here only with the reason; anything else vulture reports is dead and goes."""

from uvicorn import Server

from crm.email.statements import StatementResult
from crm.money.collections import aging_bucket
from crm.money.refunds import RefundResult
from crm.stripe.webhook_health import ModeHealth
from crm.texts.send import TextResult
from db.config import connection_budget
from db.migrate import Migration
from db.pgbouncer import PgBouncer
from db.production_shape import provision
from db.queries_collections import TIME_TO_PAY_BOUNDS
from db.queries_export import database_totals
from ops.soak import RoundRobinProxy
from ui.timeline_text import Entry
from webhook.serving import GuardedH11Protocol

_ = [
    aging_bucket,  # the tests' oracle for the SQL aging CASE (tests/test_dashboard_collections.py)
    StatementResult.email_message_id, StatementResult.already_sent,  # read by tests/test_statements.py
    ModeHealth.duplicates_24h, ModeHealth.repairs_24h,  # shown through the dataclass's fields
    connection_budget,  # tests/test_connection_budget.py; `python -m crm doctor` sums the same
    Migration,  # the old name bench/findings.py imports
    PgBouncer, provision,  # the pooled tests' fixtures and ops/soak.py start these
    TIME_TO_PAY_BOUNDS,  # held equal to crm.time_to_pay_bounds() by tests/test_collections_rollup.py
    database_totals,  # tests/test_export.py checks the export against it
    RefundResult.refund_ids,  # tests/test_refund_button.py checks a second press finds the same refunds
    RoundRobinProxy, RoundRobinProxy.serve,  # tests/test_pooled_sidecars.py
    GuardedH11Protocol,  # named to uvicorn as a string (webhook/serving.py)
    Server.should_exit,  # uvicorn reads it to stop (ops/soak.py)
    TextResult.already,  # tests/test_texts_send.py: a double tap finds the first text
    Entry.ref,  # pages/invoices.py shows it in an owner's details table (vars(entry))
]
