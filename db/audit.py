"""The audit trail as the named queries write it: one call of crm.write_audit (10_common.sql),
the one place that inserts into crm.audit_log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def write(conn: Conn, entity: str, entity_id: int, from_status: str | None, to_status: str | None, actor: str,
          detail: dict[str, Any] | None = None, *, actor_type: str = "user", event_id: str | None = None,
          at: datetime | None = None) -> None:
    conn.execute("SELECT crm.write_audit(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (entity, entity_id, from_status, to_status, actor_type, actor, Jsonb(detail or {}), event_id, at))
