"""Delivery throughput and latency on PostgreSQL, beside the raw ceilings measured in the same run.

1. lease-and-ack ceiling: the engine's lease / settle loop with the HTTP call stubbed out (every item accepted
   at once), one thread per target in this process;
2. transport ceiling: the target client's raw request rate against the sandbox's no-op endpoint;
3. drain: N records ingested, then ``credit-gateway worker`` processes (1, then 3) push them to the four
   targets of ``credit-gateway sandbox`` (result delay 0); deliveries/s from worker start to all published;
4. latency: ``credit-gateway serve`` (with its worker) takes records over HTTP at a steady rate; p50/p99 of
   published_at - ingest time per delivery.

Peak RSS (VmHWM) of every process is printed. Usage: python bench/drain.py [--records 20000] [--rate 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.base import Accepted, Item, Outcome  # noqa: E402
from bench.common import create_key, free_port, peak_rss_mb  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.delivery import DeliveryEngine  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.targets import build_clients, point_at_sandbox  # noqa: E402
from outbox import migrate, notify  # noqa: E402
from outbox.database import Database  # noqa: E402
from outbox.ingest import Actor, Incoming  # noqa: E402
from outbox.store import Store  # noqa: E402
from schemas.enums import Kind  # noqa: E402
from schemas.validation import Canonical, validate  # noqa: E402
from tests.factories import licence  # noqa: E402

TARGETS = ("national", "provincial", "municipal", "portal")
CLI = [sys.executable, "-m", "gateway.cli"]


class BenchDatabase:
    """A fresh, migrated PostgreSQL database for one measurement."""

    def __init__(self, admin: str) -> None:
        self.admin, self.name = admin, f"cgbench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')  # type: ignore[arg-type]
        self.url = admin.rsplit("/", 1)[0] + f"/{self.name}"
        db = Database(self.url)
        migrate.upgrade(db)
        db.dispose()

    def drop(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')  # type: ignore[arg-type]


def start(args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*CLI, *args], env=env, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    if args[0] != "worker":
        for line in proc.stderr:
            if b"Uvicorn running on" in line:
                break
    threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()
    return proc


def environment(db_url: str, sandbox: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    env |= {
        "CREDIT_GATEWAY_DATABASE_URL": db_url,
        "CREDIT_GATEWAY_LOG_LEVEL": "INFO",  # serve says "running on" at INFO: readiness
        "CREDIT_GATEWAY_DELIVERY__POLL_INTERVAL_SECONDS": "0.1",
    }
    for target in TARGETS:
        env[f"CREDIT_GATEWAY_TARGETS__{target.upper()}__BASE_URL"] = f"{sandbox}/{target}"
    return env | extra


def records(n: int, prefix: str) -> list[Incoming]:
    out = []
    for i in range(n):
        data = licence(f"{prefix}{i:06d}", content=f"准予核发施工许可证，编号{i}")
        canonical = validate(Kind.LICENCE, data, today=dt.date(2026, 11, 25))
        assert isinstance(canonical, Canonical)
        out.append(Incoming(canonical, data))
    return out


def ingest(store: Store, items: list[Incoming]) -> None:
    actor = Actor("bench", "source")
    for start_at in range(0, len(items), 500):
        store.ingest(
            source_system="bench",
            kind=Kind.LICENCE,
            items=items[start_at : start_at + 500],
            actor=actor,
            now=dt.datetime.now(dt.UTC),
        )


def published(store: Store) -> int:
    return store.delivery_counts_total("published")


def wait_published(db_url: str, store: Store, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {notify.SETTLED}")
        while published(store) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {published(store)} of {expected} published")
            for _ in conn.notifies(timeout=0.5, stop_after=50):
                pass


# -- ceilings ------------------------------------------------------------------------------------------------


class StubClient:
    """A target client whose HTTP call is stubbed out: everything is accepted at once."""

    def __init__(self, name: str, max_items: int) -> None:
        self.name, self.two_stage = name, False
        self.adapter = type("Adapter", (), {"max_items": max_items, "name": name})()

    def deliver(self, items: Sequence[Item]) -> list[Outcome]:
        return [Accepted(i.key, "stub") for i in items]

    def deliver_traced(self, items: Sequence[Item]) -> tuple[list[Outcome], dict[str, object]]:
        """What the engine calls since attempts keep excerpts: no exchange, so no excerpt."""
        return self.deliver(items), {}


def lease_ack_ceiling(admin: str, items: list[Incoming]) -> float:
    db = BenchDatabase(admin)
    store = Store(Database(db.url), {Kind.LICENCE: TARGETS})
    ingest(store, items)
    clients = {t: StubClient(t, 500) for t in TARGETS}
    engine = DeliveryEngine(store, clients, SystemClock(), "stub")  # type: ignore[arg-type]

    def drain(target: str) -> None:
        while engine.push_once(target):
            pass

    started = time.perf_counter()
    threads = [threading.Thread(target=drain, args=(t,)) for t in TARGETS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = len(items) * len(TARGETS) / (time.perf_counter() - started)
    store.db.dispose()
    db.drop()
    return rate


def transport_ceiling(sandbox: str, seconds: float = 2.0) -> float:
    settings = Settings()
    point_at_sandbox(settings, sandbox)
    client = build_clients(settings, SystemClock())["national"]
    http = client.transport.client
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        http.get(f"{sandbox}/_admin/noop").raise_for_status()
        count += 1
    client.close()
    return count / (time.perf_counter() - started)


# -- measurements --------------------------------------------------------------------------------------------


def lanes(db_url: str, started_at: float) -> tuple[dict[str, float], float]:
    """Each target's lane: its deliveries / the time from the workers' start to its last publication; and the
    seconds from the workers' start to the first publication (their start-up: imports, connections, first lease)."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT target, count(*), extract(epoch FROM min(published_at)), extract(epoch FROM max(published_at)) "
            "FROM delivery GROUP BY target"
        ).fetchall()
    first = min(float(row[2]) for row in rows)
    return {target: count / (float(last) - started_at) for target, count, _, last in rows}, first - started_at


def drain_with_workers(
    admin: str, items: list[Incoming], workers: int
) -> tuple[float, list[float], float, tuple[dict[str, float], float]]:
    sandbox_port = free_port()
    sandbox = start(["sandbox", "--port", str(sandbox_port), "--result-delay", "0"], dict(os.environ))
    db = BenchDatabase(admin)
    store = Store(Database(db.url), {Kind.LICENCE: TARGETS})
    ingest(store, items)
    env = environment(db.url, f"http://127.0.0.1:{sandbox_port}")
    started, started_at = time.perf_counter(), time.time()
    procs = [start(["worker"], env) for _ in range(workers)]
    try:
        wait_published(db.url, store, len(items) * len(TARGETS))
        rate = len(items) * len(TARGETS) / (time.perf_counter() - started)
        per_target = lanes(db.url, started_at)
        rss = [peak_rss_mb(p.pid) for p in procs]
        sandbox_rss = peak_rss_mb(sandbox.pid)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        sandbox.terminate()
        sandbox.wait(timeout=30)
        store.db.dispose()
        db.drop()
    return rate, rss, sandbox_rss, per_target


def latency(admin: str, rate: float, seconds: float) -> tuple[float, float, float, float]:
    sandbox_port, port = free_port(), free_port()
    sandbox = start(["sandbox", "--port", str(sandbox_port), "--result-delay", "0"], dict(os.environ))
    db = BenchDatabase(admin)
    env = environment(db.url, f"http://127.0.0.1:{sandbox_port}", CREDIT_GATEWAY_PORT=str(port))
    key = create_key(env)
    server = start(["serve"], env)
    store = Store(Database(db.url), {Kind.LICENCE: TARGETS})
    total = int(rate * seconds)
    bodies = [orjson.dumps(licence(f"L{i:06d}", content=f"编号{i}")) for i in range(total)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
            started = time.perf_counter()
            for i, body in enumerate(bodies):  # a steady rate: each post at its scheduled time
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                assert http.post("/api/v1/licences", content=body).status_code == 201
        wait_published(db.url, store, total * len(TARGETS))
        lags = store.publish_lags()
        server_rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
        sandbox.terminate()
        sandbox.wait(timeout=30)
        store.db.dispose()
        db.drop()
    lags.sort()
    return lags[len(lags) // 2], lags[int(len(lags) * 0.99)], max(lags), server_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=200.0, help="records/s for the latency run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument(
        "--pg", default=os.environ.get("CREDIT_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    items = records(args.records, "D")
    deliveries = args.records * len(TARGETS)

    stub = lease_ack_ceiling(args.pg, items)
    sandbox_port = free_port()
    sandbox = start(["sandbox", "--port", str(sandbox_port), "--result-delay", "0"], dict(os.environ))
    transport = transport_ceiling(f"http://127.0.0.1:{sandbox_port}")
    sandbox.terminate()
    sandbox.wait(timeout=30)
    one, one_rss, one_sandbox, _ = drain_with_workers(args.pg, items, 1)
    three, three_rss, three_sandbox, (three_lanes, start_up) = drain_with_workers(args.pg, items, 3)
    p50, p99, worst, serve_rss = latency(args.pg, args.rate, args.seconds)

    print(
        f"\ndrain benchmark on PostgreSQL: {args.records} records x {len(TARGETS)} targets = {deliveries} "
        f"deliveries; {os.cpu_count()} cores"
    )
    print(f"  ceiling, lease-and-ack loop (HTTP stubbed):   {stub:8.0f} deliveries/s")
    print(f"  ceiling, transport raw request rate:         {transport:8.0f} requests/s")
    print(f"  1 worker process:                            {one:8.0f} deliveries/s  ({one / stub:.0%} of the loop)")
    print(
        f"  3 worker processes:                          {three:8.0f} deliveries/s  ({three / stub:.0%} of the "
        f"loop, {three / one:.1f}x one)   goal >= 4000"
    )
    print(
        "  lanes with 3 workers (deliveries / time to the lane's last publication): "
        + ", ".join(f"{t} {three_lanes[t]:.0f}/s" for t in TARGETS)
        + f"; portal {three_lanes['portal'] / transport:.0%} of the transport ceiling"
    )
    print(
        f"  of which start-up (worker start to the first publication): {start_up:.1f} s; after it "
        f"{deliveries / (deliveries / three - start_up):.0f} deliveries/s"
    )
    print(
        f"  latency at {args.rate:.0f} records/s for {args.seconds:.0f} s (ingest -> published, 4 targets): "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {worst * 1000:.0f} ms   goal p99 < 1000 ms"
    )
    print(
        f"  peak RSS: workers {', '.join(f'{r:.0f}' for r in one_rss + three_rss)} MB; "
        f"sandbox {max(one_sandbox, three_sandbox):.0f} MB; serve {serve_rss:.0f} MB; "
        f"this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
