"""Records the Settings page's test emails (crm.email_messages, kind 'test'), so Activity lists them."""

from __future__ import annotations

from db.pool import Conn


def record_test_email(conn: Conn, resend_id: str, idempotency_key: str, from_address: str, to_address: str,
                      subject: str) -> int:
    row = conn.execute(
        "INSERT INTO crm.email_messages (kind, resend_id, idempotency_key, from_address, to_address, subject, "
        "status, sent_at) VALUES ('test', %s, %s, %s, %s, %s, 'sent', now()) RETURNING id",
        (resend_id, idempotency_key, from_address, to_address, subject),
    ).fetchone()
    assert row is not None
    return int(row["id"])
