"""Set-wise integrity checks of loaded data: the load skips per-row foreign-key triggers,
so every foreign key of the crm schema is verified here with one anti-join each.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import tuple_row

_FOREIGN_KEYS = """
    SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
           array_agg(a.attname ORDER BY k.n), array_agg(fa.attname ORDER BY k.n)
    FROM pg_constraint c
    CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(col, fcol, n)
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
    JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.fcol
    WHERE c.contype = 'f' AND c.connamespace = 'crm'::regnamespace
    GROUP BY c.conname, c.conrelid, c.confrelid
    ORDER BY 1
"""


def orphans(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Foreign key name -> rows whose (non-null) key has no parent row. All zero when consistent."""
    out: dict[str, int] = {}
    with conn.cursor(row_factory=tuple_row) as cur:
        for name, child, parent, cols, pcols in cur.execute(_FOREIGN_KEYS).fetchall():
            on = " AND ".join(f"p.{pc} = c.{cc}" for cc, pc in zip(cols, pcols, strict=True))
            not_null = " AND ".join(f"c.{cc} IS NOT NULL" for cc in cols)
            # Names come from the catalog, not from input.
            sql = (f"SELECT count(*) FROM {child} c WHERE {not_null} "
                   f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {on})")
            row = cur.execute(sql.encode()).fetchone()
            out[str(name)] = int(row[0]) if row else 0
    return out
