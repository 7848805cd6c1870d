"""Credit checks per second and their latency on PostgreSQL with 1,000,000 records held (issue 11).

Seeds ``--records`` records (30% licences, 40% penalties, 20% commitments, 10% list changes) about
``--subjects`` companies with valid USCCs (each code once through COPY, the records by ``generate_series``), then,
for the same sample of subjects, in the same run:

1. ``bare lookup``: the least a check must do, one indexed ``SELECT`` of the subject's record versions by the
   JSON subject code (the expression index of migration 0006);
2. ``local part``: what a check does besides asking national: read the subject's current records, judge them in
   force, advise, and keep the query with its audit event (``CreditChecks`` with national disabled), in-process;
3. ``end to end``: ``POST /api/v1/credit-checks`` to ``credit-gateway serve`` with national answering from
   ``credit-gateway sandbox`` (both real processes), ``--concurrency`` clients at once: checks/s and latency.

Goal: p95 < 50 ms for the local part. Usage: python bench/checks.py [--records 1000000] [--checks 2000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
from stdnum.cn import uscc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, peak_rss_mb  # noqa: E402
from bench.drain import BenchDatabase, environment, start  # noqa: E402
from gateway.checks import CheckBody, CreditChecks  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from outbox.database import Database  # noqa: E402
from outbox.ingest import Actor  # noqa: E402
from outbox.store import Store  # noqa: E402

# g: record number; s: its subject (1 + g % subjects); kinds by g % 10; decision dates over 2019-08 … 2026-11.
SEED = """
INSERT INTO record (id, kind, source_system, source_id, current_version, content_hash, department, decided_on,
                    created_at, updated_at)
SELECT g, CASE WHEN g % 10 < 3 THEN 'licences' WHEN g % 10 < 7 THEN 'penalties' WHEN g % 10 < 9 THEN 'commitments'
               ELSE 'list-changes' END,
       'bench', 'B' || g, 1, repeat('h', 64), (ARRAY['行政审批科','建工科','房监科','市场科','质安站'])[1 + g % 5],
       DATE '2019-08-01' + (g % 2670), now(), now()
FROM generate_series(1, {n}) AS g;
INSERT INTO record_version (record_id, version, content_hash, content, submitted, received_at)
SELECT g, 1, repeat('h', 64),
       json_build_object(
         'counterpart', json_build_object('name', '企业' || s.i, 'category', 'legal_entity', 'uscc', s.code),
         'authority', '怀化市住房和城乡建设局',
         'decision_number', '怀建罚决〔' || g || '〕号',
         'penalty_categories', CASE WHEN g % 13 = 0 THEN json_build_array('revoke_licence')
                                    ELSE json_build_array('fine', 'warning') END,
         'decision_date', (DATE '2019-08-01' + (g % 2670))::text,
         'commitment_date', (DATE '2019-08-01' + (g % 2670))::text,
         'matter', '资质申请', 'accepting_unit', '怀化市住房和城乡建设局',
         'fulfilment', (ARRAY['pending','fulfilled','partial','unfulfilled'])[1 + g % 4],
         'list', CASE WHEN g % 20 = 9 THEN 'black' ELSE 'red' END, 'list_name', '建筑市场名单',
         'action', 'add', 'deciding_unit', '怀化市住房和城乡建设局',
         'effective_date', (DATE '2019-08-01' + (g % 2670))::text,
         'expiry_date', (DATE '2019-08-01' + (g % 2670) + 1095)::text),
       '{}'::json, now()
FROM generate_series(1, {n}) AS g JOIN subject_code AS s ON s.i = 1 + g % {subjects};
ANALYZE;
"""
BARE = (
    "SELECT record_id FROM record_version WHERE ((content -> 'counterpart'::text) ->> 'uscc'::text) = %s"
    " OR ((content -> 'counterpart'::text) ->> 'id_number'::text) = %s"
)


def codes(n: int) -> list[str]:
    out = []
    for i in range(1, n + 1):
        body = f"91431200{i:08d}A"
        out.append(body + uscc.calc_check_digit(body + "0"))
    return out


def seed(url: str, n: int, subjects: list[str]) -> float:
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE subject_code (i int PRIMARY KEY, code text NOT NULL)")
        with conn.cursor().copy("COPY subject_code (i, code) FROM STDIN") as copy:
            buffer = io.StringIO("".join(f"{i}\t{c}\n" for i, c in enumerate(subjects, start=1)))
            copy.write(buffer.getvalue())
        for statement in SEED.split(";"):
            if statement.strip():
                sql = statement.replace("{n}", str(int(n))).replace("{subjects}", str(len(subjects)))
                conn.execute(sql)  # type: ignore[arg-type]  # integers only, formatted in
        conn.execute("DROP TABLE subject_code")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE record_version")
    return time.perf_counter() - started


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(name: str, times: list[float], wall: float | None = None) -> str:
    rate = f"{len(times) / wall:8.0f}/s" if wall else " " * 10
    return (
        f"  {name:<34} p50 {statistics.median(times):6.2f} ms  p95 {pct(times, 95):6.2f} ms  "
        f"p99 {pct(times, 99):6.2f} ms  {rate}"
    )


def body(code: str) -> dict[str, object]:
    return {
        "subject": {"uscc": code},
        "matter": "建筑工程施工许可",
        "matter_type": "licence",
        "department": "行政审批科",
        "requested_by": "bench",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--subjects", type=int, default=200_000)
    parser.add_argument("--checks", type=int, default=2000, help="checks per measurement")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    db = BenchDatabase(args.pg)
    subjects = codes(args.subjects)
    sample = [subjects[(i * 7919) % len(subjects)] for i in range(args.checks)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        seeded = seed(db.url, args.records, subjects)
        print(f"seeded {args.records:,} records about {len(subjects):,} subjects in {seeded:.0f} s")

        bare: list[float] = []
        with psycopg.connect(db.url, autocommit=True) as conn:
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + BARE, (sample[0], sample[0])))
            for code in sample:
                started = time.perf_counter()
                conn.execute(BARE, (code, code)).fetchall()
                bare.append((time.perf_counter() - started) * 1000)
        assert "Index" in plan, plan

        settings = Settings(database_url=db.url)
        settings.targets.national.enabled = False
        store = Store(Database(db.url), settings.targets.routes())
        checks = CreditChecks(settings, store, SystemClock())
        actor = Actor("bench", "operator")
        local: list[float] = []
        advice: dict[str, int] = {}
        wall = time.perf_counter()
        for code in sample:
            started = time.perf_counter()
            found = checks.run(actor, CheckBody.model_validate(body(code)))
            local.append((time.perf_counter() - started) * 1000)
            advice[found["advice"]] = advice.get(found["advice"], 0) + 1
        local_wall = time.perf_counter() - wall
        checks.close()
        store.db.dispose()

        sandbox_port, gateway_port = free_port(), free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        procs.append(
            start(["sandbox", "--port", str(sandbox_port), "--result-delay", "0"], environment(db.url, sandbox))
        )
        env = environment(db.url, sandbox, CREDIT_GATEWAY_PORT=str(gateway_port))
        key = (
            subprocess.run(
                [sys.executable, "-m", "gateway.cli", "keys", "create", "--name", "bench", "--role", "operator"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        procs.append(start(["serve"], env))
        http = httpx.Client(
            base_url=f"http://127.0.0.1:{gateway_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            limits=httpx.Limits(max_connections=args.concurrency),
        )
        http.post("/api/v1/credit-checks", json=body(sample[0])).raise_for_status()  # warm-up

        def one(code: str) -> tuple[float, list[str]]:
            started = time.perf_counter()
            answer = http.post("/api/v1/credit-checks", json=body(code))
            answer.raise_for_status()
            return (time.perf_counter() - started) * 1000, answer.json()["sources"]

        wall = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, sample))
        e2e_wall = time.perf_counter() - wall
        e2e = [r[0] for r in results]
        national = sum(1 for r in results if "national" in r[1])
        rss = [peak_rss_mb(p.pid) for p in procs]
        http.close()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        db.drop()
    print(f"\ncredit checks on PostgreSQL, {args.records:,} records held, {len(sample):,} checks each:")
    print(f"  query plan of the bare lookup: {plan.splitlines()[0].strip()}")
    print(line("bare indexed lookup", bare))
    print(line("local part (in-process, kept)", local, local_wall))
    print(line(f"end to end, national on ({args.concurrency} clients)", e2e, e2e_wall))
    print(f"  advice of the local part: {advice}; national answered {national} of {len(results)}")
    print(f"  peak RSS: sandbox {rss[0]:.0f} MB, gateway {rss[1]:.0f} MB")


if __name__ == "__main__":
    main()
