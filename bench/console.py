"""Does the console stay fast over a large archive? Record search and the overview on PostgreSQL, 1,000,000 records.

Seeds a fresh database the way ``bench/history.py`` does (``generate_series``), with realistic record content this
time (counterpart name and code, eight departments, four kinds, decisions over two years), one delivery and one
attempt per record, plus a backlog and some dead letters. Then it runs the gateway in this process and, signed in
as a person, times over HTTP:

* record search: by USCC (typed in full-width digits too), by a rare and a common part of the name, by source_id,
  by kind + department + a month of decisions, by delivery state + target; p50 and p95 per shape and overall;
* the overview page (``/console/``) and its poll (``/console/overview.json``) when nothing changed, and the poll
  right after a change (an audit entry), when this month's standings are counted again.

Beside each figure, the same SQL statements the request ran (captured from the engine as they were sent) are run
again on a bare psycopg cursor and timed: the database's share, without HTTP, templates or Python.

Usage: python bench/console.py [--records 1000000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.drain import BenchDatabase  # noqa: E402
from gateway.app import build_app  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.people import People  # noqa: E402
from gateway.settings import DeliverySettings, JobSettings, Settings  # noqa: E402
from outbox.ingest import Actor  # noqa: E402
from outbox.people import PeopleStore  # noqa: E402
from tests import live  # noqa: E402

PASSWORD = "bench console password"
DEPARTMENTS = ["行政审批科", "房监科", "建工科", "市场科", "质安科", "人防科", "城建科", "法规科"]
PLACES = ["怀化市", "鹤城区", "中方县", "沅陵县", "辰溪县", "溆浦县", "会同县", "麻阳县"]
WORDS = ["鹤城", "舞水", "雪峰", "五溪", "沅江", "湘西", "武陵", "芷江"]


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


SEED_SQL = f"""
INSERT INTO record (id, kind, source_system, source_id, current_version, content_hash, department, decided_on,
                    created_at, updated_at)
SELECT g, (ARRAY['licences','penalties','commitments','list-changes'])[1 + g % 4], 'history', 'H' || g, 1,
       repeat('h', 64), ({_array(DEPARTMENTS)})[1 + g % 8], CURRENT_DATE - (g % 730), now(), now()
FROM generate_series(1, :n) AS g;
INSERT INTO record_version (record_id, version, content_hash, content, submitted, received_at)
SELECT g, 1, repeat('h', 64),
       json_build_object('source_id', 'H' || g, 'department', ({_array(DEPARTMENTS)})[1 + g % 8],
                         'counterpart', json_build_object(
                             'name', ({_array(PLACES)})[1 + g % 8] || ({_array(WORDS)})[1 + (g / 8) % 8]
                                     || '建筑工程' || g || '有限公司',
                             'category', 'legal_entity', 'uscc', '91431200' || lpad(g::text, 10, '0')),
                         'content', repeat('准予许可', 12)),
       '{{}}', now()
FROM generate_series(1, :n) AS g;
INSERT INTO delivery (record_id, version, target, operation, state, idempotency_key, attempts, next_attempt_at,
                      published_at, created_at, updated_at)
SELECT g, 1, (ARRAY['national','provincial','municipal','portal'])[1 + g % 4], 'publish',
       CASE WHEN g <= 2000 THEN 'pending' WHEN g <= 2500 THEN 'dead' ELSE 'published' END,
       'h-' || g, 1, now(), CASE WHEN g > 2500 THEN now() - (g % 43200) * interval '1 minute' END,
       now() - (g % 43200) * interval '1 minute', now()
FROM generate_series(1, :n) AS g;
INSERT INTO attempt (delivery_id, at, duration_ms, outcome, code, message)
SELECT id, coalesce(published_at, created_at), 20, CASE WHEN state = 'dead' THEN 'rejected' ELSE 'accepted' END,
       CASE WHEN state = 'dead' THEN '2004' END, CASE WHEN state = 'dead' THEN '名称不一致' END
FROM delivery WHERE state <> 'pending';
SELECT setval(pg_get_serial_sequence('record', 'id'), :n);
ANALYZE;
"""


class Capture:
    """The SQL statements the engine sends, with their parameters, while ``on``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []
        self.on = False
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if self.on:
            self.statements.append((statement, parameters))

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.on = True
        try:
            yield self.statements
        finally:
            self.on = False

    def bare_ms(self, statements: list[tuple[str, Any]]) -> float:
        """The same statements on a bare DB-API cursor (one connection, no ORM, no HTTP); writes rolled back."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            started = time.perf_counter()
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                if cursor.description is not None:
                    cursor.fetchall()
            elapsed = (time.perf_counter() - started) * 1000
            raw.rollback()
            return elapsed
        finally:
            raw.close()


def timed(http: httpx.Client, capture: Capture, path: str, params: dict[str, str]) -> tuple[float, float]:
    with capture.recording() as statements:
        started = time.perf_counter()
        answer = http.get(path, params=params)
        page_ms = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, (path, answer.status_code)
    return page_ms, capture.bare_ms(list(statements))


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def full_width(text: str) -> str:
    return text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})


def same_record(g: int) -> dict[str, str]:
    """The kind and department of record ``g`` (as seeded), over a month of decisions: never an empty answer."""
    return {
        "kind": ["licences", "penalties", "commitments", "list-changes"][g % 4],
        "department": DEPARTMENTS[g % 8],
        "from": "2026-06-01",
        "to": "2026-06-30",
    }


def row(name: str, pages: list[float], bare: list[float]) -> str:
    return (
        f"  {name:<22} {p(pages, 0.5):7.1f}ms {p(pages, 0.95):7.1f}ms   {p(bare, 0.5):10.1f}ms {p(bare, 0.95):10.1f}ms"
    )


def shapes(n: int, rng: random.Random) -> dict[str, Callable[[], dict[str, str]]]:
    def pick() -> int:
        return rng.randint(1, n)

    return {
        "USCC exact": lambda: {"q": f"91431200{pick():010d}"},
        "USCC full-width": lambda: {"q": full_width(f"91431200{pick():010d}")},
        "name, rare part": lambda: {"q": f"建筑工程{pick()}有限"},
        "name, common part": lambda: {"q": rng.choice(WORDS)},
        "source_id": lambda: {"source_id": f"H{pick()}"},
        "kind+dept+month": lambda: same_record(pick()),
        "state+target": lambda: {"state": "dead", "target": rng.choice(["national", "portal"])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20, help="requests per search shape and for the overview")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    rng = random.Random(7)
    bench_db = BenchDatabase(args.pg)
    settings = Settings(
        database_url=bench_db.url, delivery=DeliverySettings(in_serve=False), jobs=JobSettings(in_serve=False)
    )
    app = build_app(settings)
    store = app.state.services.store
    try:
        started = time.perf_counter()
        with store.db.engine.begin() as conn:
            for statement in SEED_SQL.split(";"):
                if statement.strip():
                    conn.execute(sa.text(statement), {"n": args.records})
        seeded = time.perf_counter() - started
        People(PeopleStore(store.db), SystemClock()).create(
            name="bench", role="viewer", password=PASSWORD, department=None, actor=Actor("bench", "bench")
        )
        capture = Capture(store.db.engine)
        search: dict[str, list[tuple[float, float]]] = {}
        overview: dict[str, list[tuple[float, float]]] = {}
        with live.serve(app) as base, httpx.Client(base_url=base, timeout=120) as http:
            signed = http.post("/console/login", data={"username": "bench", "password": PASSWORD})
            assert signed.status_code == 303
            for name, make in shapes(args.records, rng).items():
                timed(http, capture, "/console/records", make())  # warm the plan and the pages it reads
                search[name] = [timed(http, capture, "/console/records", make()) for _ in range(args.rounds)]
                found = re.findall(r"data-record-id", http.get("/console/records", params=make()).text)
                assert found, f"{name}: the search found nothing"
            for path in ("/console/", "/console/overview.json"):
                timed(http, capture, path, {})
                overview[f"{path} idle"] = [timed(http, capture, path, {}) for _ in range(args.rounds)]
            changed = []
            for _ in range(args.rounds):  # an audit entry moves the change mark: this month is counted again
                store.audit(Actor("bench", "bench"), "bench.touch", SystemClock().now(), detail={})
                changed.append(timed(http, capture, "/console/overview.json", {}))
            overview["poll after a change"] = changed
    finally:
        store.db.dispose()
        bench_db.drop()

    print(f"\nconsole on PostgreSQL, {args.records:,} records (seeded in {seeded:.0f} s), {args.rounds} requests each")
    print(f"  {'record search':<22} {'page p50':>9} {'page p95':>9}   {'bare SQL p50':>12} {'bare SQL p95':>12}")
    for name, runs in search.items():
        pages, bare = [r[0] for r in runs], [r[1] for r in runs]
        print(row(name, pages, bare))
    everything = [r for runs in search.values() for r in runs]
    pages, bare = [r[0] for r in everything], [r[1] for r in everything]
    print(row("all searches", pages, bare))
    print(f"  {'overview':<30} {'median':>9} {'p95':>9}   {'bare median':>12} {'bare p95':>12}")
    for path, runs in overview.items():
        pages, bare = [r[0] for r in runs], [r[1] for r in runs]
        print(
            f"  {path:<30} {statistics.median(pages):7.1f}ms {p(pages, 0.95):7.1f}ms   "
            f"{statistics.median(bare):10.1f}ms {p(bare, 0.95):10.1f}ms"
        )
    print("  goal: record search p95 < 300 ms, overview < 300 ms")


if __name__ == "__main__":
    main()
