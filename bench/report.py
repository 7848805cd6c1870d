"""How long does a month's 公示率 take with a lot of history? PostgreSQL over 1,000,000 deliveries, SQLite over 200,000.

Seeds records decided over twelve months (2025-12 … 2026-11) with four deliveries each (one per target) in a mix
of standings (on time, late, overdue, pending, withdrawn), by ``generate_series`` / a recursive CTE, then times:

* ``standings``: the month's counts by target, kind and department (the 公示率 itself);
* ``tasks``: the 月度任务 and 年度任务 alone (the year's accepted articles and list changes, its departments);
* ``full report``: everything a report holds (standings, 12-month trend, overdue and late lists, yearly quotas),
  with the settled months of the trend read back from ``settled_standing`` (kept by the warm-up run);
* ``full report, recounted``: the same with nothing kept (``settled_standing`` emptied before each run): the
  first report after a change to every month;

beside a baseline measured in the same run on the same database: counting the same month's (record, delivery)
rows with a bare join (``SELECT count(*) … JOIN … WHERE decided_on BETWEEN``): the least any report must read.
Goals: < 2 s on PostgreSQL (issue 5), a full report < 1 s (issue 14). Median of 5 runs each, after one warm-up.

Usage: python bench/report.py [--pg-deliveries 1000000] [--sqlite-deliveries 200000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.drain import BenchDatabase  # noqa: E402
from gateway.reports.build import build_report  # noqa: E402
from gateway.reports.tasks import task_tables  # noqa: E402
from outbox import migrate  # noqa: E402
from outbox.database import Database  # noqa: E402
from outbox.store import Store  # noqa: E402
from outbox.tables import settled_standing  # noqa: E402
from schemas.calendar import end_of_day  # noqa: E402
from schemas.periods import parse_period  # noqa: E402
from schemas.quotas import QuotaTargets  # noqa: E402

# g: record number; decided over 355 days from 2025-12-01; 5 departments; every 20th record a list change.
# Delivery standing by (g + target index) % 10: 0-5 on time, 6 late, 7 unpublished, 8 retry_wait, 9 dead.
PG_SEED = """
INSERT INTO record (id, kind, source_system, source_id, current_version, content_hash, department, decided_on,
                    created_at, updated_at, withdrawn_at)
SELECT g, CASE WHEN g % 20 = 0 THEN 'list-changes' ELSE 'licences' END, 'bench', 'B' || g, 1, repeat('h', 64),
       (ARRAY['行政审批科','建工科','房监科','市场科','质安站'])[1 + g % 5], DATE '2025-12-01' + (g % 355),
       now(), now(), CASE WHEN g % 97 = 0 THEN (DATE '2025-12-01' + (g % 355) + 2)::timestamptz END
FROM generate_series(1, :n) AS g;
INSERT INTO record_version (record_id, version, content_hash, content, submitted, received_at)
SELECT g, 1, repeat('h', 64),
       CASE WHEN g % 40 = 0 THEN '{"list": "red"}' WHEN g % 20 = 0 THEN '{"list": "black"}' ELSE '{}' END::json,
       '{}'::json, now()
FROM generate_series(1, :n) AS g;
INSERT INTO delivery (record_id, version, target, operation, state, idempotency_key, attempts, next_attempt_at,
                      due_date, due_by, published_at, created_at, updated_at)
SELECT g, 1, t.name, 'publish',
       CASE WHEN (g + t.i) % 10 <= 6 THEN 'published' WHEN (g + t.i) % 10 = 7 THEN 'pending'
            WHEN (g + t.i) % 10 = 8 THEN 'retry_wait' ELSE 'dead' END,
       'b-' || g || '-' || t.name, 1, now(),
       DATE '2025-12-01' + (g % 355) + t.days,
       (DATE '2025-12-01' + (g % 355) + t.days + 1)::timestamp AT TIME ZONE 'Asia/Shanghai',
       CASE WHEN (g + t.i) % 10 <= 5 THEN (DATE '2025-12-01' + (g % 355) + 1)::timestamptz
            WHEN (g + t.i) % 10 = 6 THEN (DATE '2025-12-01' + (g % 355) + t.days + 3)::timestamptz END,
       now(), now()
FROM generate_series(1, :n) AS g
CROSS JOIN (VALUES (0, 'national', 28), (1, 'provincial', 28), (2, 'municipal', 28), (3, 'portal', 7))
     AS t(i, name, days);
ANALYZE;
"""

SQLITE_SEED = """
WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n)
INSERT INTO record (id, kind, source_system, source_id, current_version, content_hash, department, decided_on,
                    created_at, updated_at, withdrawn_at)
SELECT g, CASE WHEN g % 20 = 0 THEN 'list-changes' ELSE 'licences' END, 'bench', 'B' || g, 1, 'h',
       CASE g % 5 WHEN 0 THEN '行政审批科' WHEN 1 THEN '建工科' WHEN 2 THEN '房监科' WHEN 3 THEN '市场科'
                  ELSE '质安站' END,
       date('2025-12-01', '+' || (g % 355) || ' days'), '2026-01-01 00:00:00', '2026-01-01 00:00:00',
       CASE WHEN g % 97 = 0 THEN datetime('2025-12-01', '+' || (g % 355 + 2) || ' days') END
FROM s;
WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n)
INSERT INTO record_version (record_id, version, content_hash, content, submitted, received_at)
SELECT g, 1, 'h', CASE WHEN g % 40 = 0 THEN '{"list": "red"}' WHEN g % 20 = 0 THEN '{"list": "black"}' ELSE '{}' END,
       '{}', '2026-01-01 00:00:00' FROM s;
WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n),
     t(i, name, days) AS (VALUES (0, 'national', 28), (1, 'provincial', 28), (2, 'municipal', 28), (3, 'portal', 7))
INSERT INTO delivery (record_id, version, target, operation, state, idempotency_key, attempts, next_attempt_at,
                      due_date, due_by, published_at, created_at, updated_at)
SELECT g, 1, t.name, 'publish',
       CASE WHEN (g + t.i) % 10 <= 6 THEN 'published' WHEN (g + t.i) % 10 = 7 THEN 'pending'
            WHEN (g + t.i) % 10 = 8 THEN 'retry_wait' ELSE 'dead' END,
       'b-' || g || '-' || t.name, 1, '2026-01-01 00:00:00',
       date('2025-12-01', '+' || (g % 355 + t.days) || ' days'),
       datetime('2025-12-01', '+' || (g % 355 + t.days + 1) || ' days', '-8 hours'),
       CASE WHEN (g + t.i) % 10 <= 5 THEN datetime('2025-12-01', '+' || (g % 355 + 1) || ' days')
            WHEN (g + t.i) % 10 = 6 THEN datetime('2025-12-01', '+' || (g % 355 + t.days + 3) || ' days') END,
       '2026-01-01 00:00:00', '2026-01-01 00:00:00'
FROM s CROSS JOIN t;
ANALYZE;
"""

PERIOD = parse_period("2026-10")
AS_OF = dt.date(2026, 11, 25)
BASELINE = sa.text(
    "SELECT count(*) FROM record JOIN delivery ON delivery.record_id = record.id "
    "WHERE record.decided_on BETWEEN :start AND :end"
)


def seed(store: Store, sql: str, deliveries: int) -> float:
    started = time.perf_counter()
    with store.db.engine.begin() as conn:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(sa.text(statement), {"n": deliveries // 4})
    return time.perf_counter() - started


def timed(work: Callable[[], object], rounds: int = 5) -> float:
    work()  # warm-up: caches and plans
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(store: Store) -> dict[str, float]:
    window = {"decided_from": PERIOD.start, "decided_to": PERIOD.end, "as_of": AS_OF, "as_of_end": end_of_day(AS_OF)}
    now = dt.datetime.now(dt.UTC)
    baseline = timed(
        lambda: store.db.read(lambda c: c.execute(BASELINE, {"start": PERIOD.start, "end": PERIOD.end}).scalar())
    )
    rows = store.db.read(lambda c: c.execute(BASELINE, {"start": PERIOD.start, "end": PERIOD.end}).scalar_one())
    return {
        "month rows": float(rows),
        "baseline": baseline,
        "standings": timed(lambda: store.standings(**window)),
        "tasks": timed(lambda: task_tables(store, PERIOD, as_of=AS_OF, targets=QuotaTargets())),
        "full report": timed(lambda: build_report(store, PERIOD, as_of=AS_OF, now=now)),
        "full report, recounted": timed(lambda: recounted(store, now)),
    }


def recounted(store: Store, now: dt.datetime) -> object:
    store.db.transact(lambda c: c.execute(sa.delete(settled_standing)))
    return build_report(store, PERIOD, as_of=AS_OF, now=now)


def report(backend: str, deliveries: int, seeded: float, figures: dict[str, float]) -> None:
    base = figures["baseline"]
    print(
        f"\n{backend}: {deliveries:,} deliveries (seeded in {seeded:.0f} s); 2026-10 holds {figures['month rows']:,.0f}"
    )
    print(f"  baseline (count the month's rows):    {base * 1000:8.1f} ms")
    for name in ("standings", "tasks", "full report", "full report, recounted"):
        print(f"  {name + ':':38s} {figures[name] * 1000:8.1f} ms   ({figures[name] / base:4.1f}× baseline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-deliveries", type=int, default=1_000_000)
    parser.add_argument("--sqlite-deliveries", type=int, default=200_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    db = BenchDatabase(args.pg)
    store = Store(Database(db.url), {})
    try:
        seeded = seed(store, PG_SEED, args.pg_deliveries)
        report("PostgreSQL", args.pg_deliveries, seeded, measure(store))
    finally:
        store.db.dispose()
        db.drop()

    with tempfile.TemporaryDirectory() as tmp:
        lite = Database(f"sqlite:///{tmp}/report.db")
        migrate.upgrade(lite)
        store = Store(lite, {})
        try:
            seeded = seed(store, SQLITE_SEED, args.sqlite_deliveries)
            report("SQLite", args.sqlite_deliveries, seeded, measure(store))
        finally:
            lite.dispose()


if __name__ == "__main__":
    main()
