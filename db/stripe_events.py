"""Named queries for the Stripe event ledger (crm.stripe_events) and applying events.

`apply_event` is the whole database side of a webhook delivery: ONE statement, sent on
an autocommit connection, so the round trip that carries it is also its transaction
(no BEGIN/COMMIT round trips). Everything else happens inside crm.apply_stripe_event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]

_APPLY = "SELECT crm.apply_stripe_event(%s, %s, %s)"


@dataclass(frozen=True)
class ApplyResult:
    """What crm.apply_stripe_event decided for one event."""

    outcome: str  # applied | duplicate | ignored | unmatched | rejected
    detail: str = ""
    invoice_id: int | None = None
    job_id: int | None = None
    from_status: str | None = None
    to_status: str | None = None
    job_completed: bool = False
    resend_ids_to_cancel: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApplyResult:
        return cls(
            outcome=str(data["outcome"]),
            detail=str(data.get("detail") or ""),
            invoice_id=data.get("invoice_id"),
            job_id=data.get("job_id"),
            from_status=data.get("from_status"),
            to_status=data.get("to_status"),
            job_completed=bool(data.get("job_completed")),
            resend_ids_to_cancel=[str(x) for x in data.get("resend_ids_to_cancel") or []],
        )


def apply_event(conn: Conn, event: dict[str, Any], mode: str, source: str = "webhook") -> ApplyResult:
    """Apply one verified event. `conn` must be in autocommit mode: the statement is the transaction."""
    if not conn.autocommit:
        raise ValueError("apply_event needs an autocommit connection (one statement = one transaction)")
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_APPLY, (Jsonb(event), mode, source)).fetchone()
    assert row is not None, "crm.apply_stripe_event returned no row"
    return ApplyResult.from_json(row[0])
