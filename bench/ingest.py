"""Ingest throughput over HTTP beside the raw insert ceiling measured in the same run.

For each database (SQLite file, PostgreSQL) this script:

1. measures the *raw ceiling*: the very rows an ingest writes (record, version, one delivery per target, audit
   row) inserted with the bare DBAPI driver (sqlite3 / psycopg), no HTTP, no validation, no SQLAlchemy:
   one transaction per record with 8 threads, and 500 records per transaction;
2. starts ``credit-gateway serve`` as its own process on that database and posts new records over HTTP:
   single posts from 8 concurrent clients, and batches of 500;
3. prints records/s, the ratio to the raw ceiling, and the peak RSS (VmHWM) of the gateway process; three rounds
   by default, each ceiling measured right before its gateway figure, and the median ratios.

Usage: python bench/ingest.py [--records 4000] [--rounds 3] [--only sqlite|postgres] [--pg postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import httpload  # noqa: E402
from bench.common import create_key, free_port, peak_rss_mb  # noqa: E402
from tests.factories import licence  # noqa: E402  (builders of valid records)

CLIENTS = 8
WORKERS = 1  # gateway HTTP worker processes
BATCH = 500
TARGETS = ("national", "provincial", "municipal", "portal")
GOALS = {"single": "≥60%", "batch": "≥85%"}  # issue 14: of the raw ceiling at the same concurrency


def records(prefix: str, n: int) -> list[dict[str, Any]]:
    return [licence(f"{prefix}-{i:07d}", content=f"准予核发施工许可证，编号{i}") for i in range(n)]


# --- raw ceiling -------------------------------------------------------------------------------------------


class RawWriter:
    """The ingest's rows through the bare driver: the most the database and driver can do."""

    def __init__(self, connect: Callable[[], Any], placeholder: str, returning: bool) -> None:
        self.connect, self.p = connect, placeholder
        self.returning = returning

    def _sql(self, table: str, cols: list[str]) -> str:
        marks = ", ".join([self.p] * len(cols))
        return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"

    def write(self, conn: Any, batch: list[dict[str, Any]], tag: str) -> None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        cur = conn.cursor()
        rec_cols = [
            "kind",
            "source_system",
            "source_id",
            "current_version",
            "content_hash",
            "department",
            "decided_on",
            "created_at",
            "updated_at",
        ]
        ids = []
        for r in batch:
            cur.execute(
                self._sql("record", rec_cols) + " RETURNING id",
                ("licences", tag, r["source_id"], 1, "h" * 64, r["department"], r["decision_date"], now, now),
            )
            ids.append(cur.fetchone()[0])
        cur.executemany(
            self._sql(
                "record_version", ["record_id", "version", "content_hash", "content", "submitted", "received_at"]
            ),
            [
                (i, 1, "h" * 64, orjson.dumps(r).decode(), orjson.dumps(r).decode(), now)
                for i, r in zip(ids, batch, strict=True)
            ],
        )
        cur.executemany(
            self._sql(
                "delivery",
                [
                    "record_id",
                    "version",
                    "target",
                    "operation",
                    "state",
                    "idempotency_key",
                    "attempts",
                    "next_attempt_at",
                    "created_at",
                    "updated_at",
                ],
            ),
            [(i, 1, t, "publish", "pending", f"{tag}-{i}-{t}", 0, now, now, now) for i in ids for t in TARGETS],
        )
        cur.executemany(
            self._sql("audit_event", ["at", "actor", "role", "action", "kind", "source_id", "record_id", "detail"]),
            [
                (now, tag, "source", "ingest.created", "licences", r["source_id"], i, '{"version": 1}')
                for i, r in zip(ids, batch, strict=True)
            ],
        )
        conn.commit()


def run_raw(writer: RawWriter, rows: list[dict[str, Any]], per_tx: int, threads: int) -> float:
    chunks = [rows[i : i + per_tx] for i in range(0, len(rows), per_tx)]
    lock = threading.Lock()
    tag = f"raw-{uuid.uuid4().hex[:6]}"

    def worker() -> None:
        conn = writer.connect()
        while True:
            with lock:
                if not chunks:
                    break
                chunk = chunks.pop()
            writer.write(conn, chunk, tag)
        conn.close()

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return len(rows) / (time.perf_counter() - started)


# --- over HTTP ---------------------------------------------------------------------------------------------


def start_gateway(db_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    env |= {
        "CREDIT_GATEWAY_DATABASE_URL": db_url,
        "CREDIT_GATEWAY_LOG_LEVEL": "WARNING",
        "CREDIT_GATEWAY_DELIVERY__IN_SERVE": "false",
    }  # ingest alone: no worker pushing to an absent sandbox
    cli = [sys.executable, "-m", "gateway.cli"]
    key = create_key(env, workdir)
    port = free_port()
    proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--workers", str(WORKERS)], env=env, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a benchmark may poll a starting server; tests never do
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base, key
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("gateway did not become ready")


def post_singles(base: str, key: str, rows: list[dict[str, Any]]) -> float:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    requests = [httpload.request("POST", "/api/v1/licences", orjson.dumps(r), headers) for r in rows]

    def check(status: int, body: bytes) -> None:
        assert status == 201, body[:300]

    host, port = base.removeprefix("http://").split(":")
    started = time.perf_counter()
    asyncio.run(httpload.run(host, int(port), requests, CLIENTS, check))
    return len(rows) / (time.perf_counter() - started)


def post_batches(base: str, key: str, rows: list[dict[str, Any]]) -> float:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    bodies = [orjson.dumps({"items": rows[i : i + BATCH]}) for i in range(0, len(rows), BATCH)]
    with httpx.Client(base_url=base, timeout=120) as http:
        started = time.perf_counter()
        for body in bodies:
            r = http.post("/api/v1/licences/batch", content=body, headers=headers)
            assert r.status_code == 200 and all(x["status"] == "created" for x in r.json()["results"]), r.text[:300]
        return len(rows) / (time.perf_counter() - started)


# --- databases -----------------------------------------------------------------------------------------------


def sqlite_backend(workdir: Path) -> tuple[str, RawWriter]:
    import sqlite3

    path = workdir / "bench.db"

    def connect() -> Any:
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    return f"sqlite:///{path}", RawWriter(connect, "?", True)


def pg_backend(admin: str) -> tuple[str, RawWriter, Callable[[], None]]:
    name = f"cgbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = admin.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    return url, RawWriter(lambda: psycopg.connect(url), "%s", True), drop


def bench(label: str, db_url: str, writer: RawWriter, n: int, rounds: int, workdir: Path) -> list[dict[str, Any]]:
    """``rounds`` rounds on one database, each measuring a ceiling right before the gateway's figure it is the
    ceiling of, so a machine that slows down for a while slows both sides of a ratio."""
    proc, base, key = start_gateway(db_url, workdir)  # migrates the database
    out = []
    try:
        for r in range(rounds):
            raw_single = run_raw(writer, records(f"raw1-{r}", n), per_tx=1, threads=CLIENTS)
            single = post_singles(base, key, records(f"http1-{r}", n))
            raw_batch = run_raw(writer, records(f"rawb-{r}", n * 2), per_tx=BATCH, threads=1)
            batch = post_batches(base, key, records(f"httpb-{r}", n * 2))
            out.append({"raw_single": raw_single, "single": single, "raw_batch": raw_batch, "batch": batch})
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return [{"db": label, "round": i + 1, "rss": rss, **figures} for i, figures in enumerate(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=4000, help="records per single-post run (batches: twice)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per database (medians are printed)")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--pg", default=os.environ.get("CREDIT_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.only in (None, "sqlite"):
            url, writer = sqlite_backend(workdir)
            results += bench("sqlite", url, writer, args.records, args.rounds, workdir)
        if args.only in (None, "postgres"):
            url, writer, drop = pg_backend(args.pg)
            try:
                results += bench("postgres", url, writer, args.records, args.rounds, workdir)
            finally:
                drop()
    print(
        f"\ningest benchmark: {args.records} single posts ({CLIENTS} concurrent clients), "
        f"{args.records * 2} records in batches of {BATCH}; {os.cpu_count()} cores"
    )
    print(f"{'db':9} {'round':5} {'mode':7} {'http rec/s':>11} {'raw rec/s':>10} {'ratio':>6}  goal   gateway peak RSS")
    for r in results:
        for mode, got, raw in (("single", r["single"], r["raw_single"]), ("batch", r["batch"], r["raw_batch"])):
            row = f"{r['db']:9} {r['round']:<5} {mode:7} {got:11.0f} {raw:10.0f} {got / raw:6.0%}"
            print(f"{row}  {GOALS[mode]:5}  {r['rss']:.0f} MB")
    for db in dict.fromkeys(r["db"] for r in results):
        mine = [r for r in results if r["db"] == db]
        for mode, raw_key in (("single", "raw_single"), ("batch", "raw_batch")):
            ratios = sorted(r[mode] / r[raw_key] for r in mine)
            print(
                f"{db:9} {mode:7} median ratio {statistics.median(ratios):4.0%} "
                f"(range {ratios[0]:.0%}-{ratios[-1]:.0%}, {len(ratios)} rounds), goal {GOALS[mode]}"
            )


if __name__ == "__main__":
    main()
