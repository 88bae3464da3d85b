"""`python -m crm rotate-secret-key`: re-encrypt every stored secret with CRM_SECRET_KEY.

Run with the new key in CRM_SECRET_KEY and the old one(s) in CRM_SECRET_KEYS_OLD; after it
reports success the old keys can be removed. Prints secret names and counts, never values.
"""

from __future__ import annotations

import sys


def run_rotation() -> int:
    from crm.config.secrets_store import WHAT_TO_DO, SecretKeyError, rotate_all
    from db.pool import connect

    try:
        with connect() as conn:
            report = rotate_all(conn)
    except SecretKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"re-encrypted {len(report.rotated)} stored secret(s) with CRM_SECRET_KEY"
          + (f": {', '.join(report.rotated)}" if report.rotated else ""))
    if report.undecryptable:
        print(f"error: {len(report.undecryptable)} secret(s) no configured key decrypts, left unchanged: "
              f"{', '.join(report.undecryptable)}. {WHAT_TO_DO}", file=sys.stderr)
        return 1
    print("every stored secret now decrypts with CRM_SECRET_KEY alone: CRM_SECRET_KEYS_OLD can be removed")
    return 0
