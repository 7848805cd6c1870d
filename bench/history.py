"""Does the lease stay fast as delivered rows pile up? Lease time with no history, then with a million rows.

The lease query filters on state and target and orders on next_attempt_at through a partial index over the
due rows only, so published history should not enter it. This measures it on PostgreSQL: the time to lease (and
load) a batch of 500 due deliveries, first on a fresh database, then after inserting ``--history`` published
deliveries (with their records and versions) by ``generate_series``.

Usage: python bench/history.py [--history 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drain import TARGETS, BenchDatabase, ingest, records  # noqa: E402
from outbox.database import Database  # noqa: E402
from outbox.store import Store  # noqa: E402
from schemas.enums import Kind  # noqa: E402

HISTORY_SQL = """
INSERT INTO record (id, kind, source_system, source_id, current_version, content_hash, department, decided_on,
                    created_at, updated_at)
SELECT 100000000 + g, 'licences', 'history', 'H' || g, 1, repeat('h', 64), '行政审批科', DATE '2025-01-01',
       now(), now() FROM generate_series(1, :n) AS g;
INSERT INTO record_version (record_id, version, content_hash, content, submitted, received_at)
SELECT 100000000 + g, 1, repeat('h', 64), '{}', '{}', now() FROM generate_series(1, :n) AS g;
INSERT INTO delivery (record_id, version, target, operation, state, idempotency_key, attempts, next_attempt_at,
                      published_at, created_at, updated_at)
SELECT 100000000 + g, 1, (ARRAY['national','provincial','municipal','portal'])[1 + g % 4], 'publish', 'published',
       'h-' || g, 1, now(), now(), now(), now() FROM generate_series(1, :n) AS g;
ANALYZE;
"""


def lease_times(store: Store, rounds: int = 8) -> list[float]:
    """Lease 500 due national deliveries, then give them back; milliseconds per lease."""
    times = []
    for _ in range(rounds):
        now = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        leased = store.lease_due(
            target="national", owner="bench", limit=500, now=now, lease_for=dt.timedelta(seconds=60)
        )
        times.append((time.perf_counter() - started) * 1000)
        assert len(leased) == 500
        store.db.transact(
            lambda c: c.exec_driver_sql(
                "UPDATE delivery SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL "
                "WHERE state = 'in_flight'"
            )
        )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=1_000_000, help="published deliveries to pile up")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    db = BenchDatabase(args.pg)
    store = Store(Database(db.url), {Kind.LICENCE: TARGETS})
    try:
        ingest(store, records(2000, "F"))
        before = lease_times(store)
        started = time.perf_counter()
        import sqlalchemy as sa

        with store.db.engine.begin() as conn:
            for statement in HISTORY_SQL.split(";"):
                if statement.strip():
                    conn.execute(sa.text(statement), {"n": args.history})
        loaded = time.perf_counter() - started
        after = lease_times(store)
    finally:
        store.db.dispose()
        db.drop()
    print(f"\nlease of 500 due deliveries on PostgreSQL (median of {len(before)}):")
    print(f"  no history:                        {statistics.median(before):6.1f} ms")
    print(
        f"  with {args.history:,} published rows:   {statistics.median(after):6.1f} ms"
        f"   (history inserted in {loaded:.0f} s)"
    )


if __name__ == "__main__":
    main()
