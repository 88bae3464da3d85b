"""Loads generated rows with COPY FROM STDIN, in dependency order, then fixes sequences.

COPY writes the given values into GENERATED ALWAYS identity columns (the COPY docs:
it behaves like INSERT ... OVERRIDING SYSTEM VALUE), so ids are explicit and foreign
keys are known while generating. Afterwards every identity sequence is set past the
largest id, so rows the code under test inserts get fresh ids, and the tables are
ANALYZEd. Only the loading session runs with synchronous_commit = off.

A producer thread generates the next chunk while Postgres ingests the current one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from bench.datagen import Chunk, Generator, Plan
from bench.rows import COLUMNS, TABLES

_DONE = object()


@dataclass
class LoadResult:
    invoices: int
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)


def _copy(cur: psycopg.Cursor, table: str, rows: list[tuple[str, ...]]) -> None:  # type: ignore[type-arg]
    if not rows:
        return
    cols = ", ".join(COLUMNS[table])
    buf = "".join("\t".join(r) + "\n" for r in rows)
    with cur.copy(f"COPY crm.{table} ({cols}) FROM STDIN") as copy:
        copy.write(buf)


def _prefetch(chunks: Iterator[Chunk], depth: int = 2) -> Iterator[Chunk]:
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for c in chunks:
                q.put(c)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer below
            failure.append(exc)
        finally:
            q.put(_DONE)

    threading.Thread(target=produce, name="bench-datagen", daemon=True).start()
    while True:
        item = q.get()
        if item is _DONE:
            break
        assert isinstance(item, Chunk)
        yield item
    if failure:
        raise failure[0]


_SECONDARY_INDEXES = """
    SELECT i.indexname, i.indexdef FROM pg_indexes i
    WHERE i.schemaname = 'crm' AND i.tablename = ANY(%s)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname
                      AND c.connamespace = 'crm'::regnamespace)
"""


def _drop_secondary_indexes(conn: psycopg.Connection) -> list[str]:  # type: ignore[type-arg]
    """Drop indexes that back no constraint; return their definitions to rebuild after the load.

    Building an index once over loaded rows is several times cheaper than maintaining it
    row by row during COPY. Primary keys and UNIQUE constraints stay (they guard the data).
    """
    rows = conn.execute(_SECONDARY_INDEXES, (list(TABLES),)).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX crm."{name}"')
    return [str(d) for _, d in rows]


def load(url: str, invoices: int, anchor: datetime, seed: int = 7, rebuild_indexes: bool | None = None) -> LoadResult:
    """Generate and COPY `invoices` invoices (and everything in proportion) into an empty, migrated db.

    rebuild_indexes (default: from 50,000 invoices up) drops and rebuilds secondary indexes.
    """
    if rebuild_indexes is None:
        rebuild_indexes = invoices >= 50_000
    gen = Generator(Plan.for_invoices(invoices), anchor, seed)
    counts = dict.fromkeys(TABLES, 0)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '256MB'")
        indexes = _drop_secondary_indexes(conn) if rebuild_indexes else []
        conn.commit()
        with conn.cursor() as cur:
            for batch in gen.customers():
                _copy(cur, "customers", batch)
                counts["customers"] += len(batch)
            conn.commit()
            for chunk in _prefetch(gen.chunks()):
                for table in TABLES[1:]:
                    _copy(cur, table, chunk.rows[table])
                    counts[table] += len(chunk.rows[table])
                conn.commit()
            for table in TABLES:
                if table == "stripe_events":  # text ids from Stripe, no sequence
                    continue
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('crm.{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM crm.{table}), false)"
                )
            conn.commit()
            copied = time.perf_counter()
            for definition in indexes:
                cur.execute(definition)
            conn.commit()
    indexed = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) ")
        # Flush the load's dirty pages now, not during the measurements that follow.
        conn.execute("CHECKPOINT")
    done = time.perf_counter()
    return LoadResult(invoices=counts["invoices"], seconds=done - started, rows=counts,
                      phases={"copy": copied - started, "indexes": indexed - copied, "vacuum_analyze": done - indexed})
