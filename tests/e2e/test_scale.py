"""Real ``credit-gateway worker`` processes on one PostgreSQL: killed mid-push, and scaled out.

Exactly-once is judged by the sandbox's own counts, not by the gateway's view of itself. Waiting is on
PostgreSQL notifications (every settle NOTIFYs ``credit_gateway_settled``), rechecking the database each time.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from adapters.sandbox.app import create_sandbox
from outbox import notify, tables
from outbox.database import Database
from outbox.ingest import Actor, Incoming
from outbox.store import Store
from schemas.enums import Kind
from schemas.validation import Canonical, validate
from tests import live
from tests.factories import licence

CLI = [str(Path(sys.executable).parent / "credit-gateway")]
TARGETS = ("national", "provincial", "municipal", "portal")


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


def worker_env(pg_url: str, sandbox: str, batch: int, lease_seconds: int = 2) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    env |= {
        "CREDIT_GATEWAY_DATABASE_URL": pg_url,
        "CREDIT_GATEWAY_LOG_LEVEL": "WARNING",
        "CREDIT_GATEWAY_DELIVERY__LEASE_SECONDS": str(lease_seconds),
        "CREDIT_GATEWAY_DELIVERY__REAP_INTERVAL_SECONDS": "0.5",
        "CREDIT_GATEWAY_DELIVERY__PUSH_INTERVAL_SECONDS": "0.5",
        "CREDIT_GATEWAY_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
        "CREDIT_GATEWAY_DELIVERY__INITIAL_BACKOFF_SECONDS": "0.2",
    }
    for target in TARGETS:
        env[f"CREDIT_GATEWAY_TARGETS__{target.upper()}__BASE_URL"] = f"{sandbox}/{target}"
        env[f"CREDIT_GATEWAY_TARGETS__{target.upper()}__BATCH_SIZE"] = str(batch)
    return env


class Workers:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir, self.running, self.started = env, log_dir, [], 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = open(self.log_dir / f"worker-{self.started}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([*CLI, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.running.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.running:
            proc.send_signal(signal.SIGTERM)
        for proc in self.running:
            proc.wait(timeout=60)
        self.running.clear()


def ingest(store: Store, n: int) -> None:
    today = dt.date(2026, 11, 25)
    for start in range(0, n, 500):
        items = []
        for i in range(start, min(n, start + 500)):
            data = licence(f"K{i:05d}", content=f"准予核发施工许可证，编号{i}")
            canonical = validate(Kind.LICENCE, data, today=today)
            assert isinstance(canonical, Canonical)
            items.append(Incoming(canonical, data))
        store.ingest(
            source_system="approval-system",
            kind=Kind.LICENCE,
            items=items,
            actor=Actor("approval-system", "source"),
            now=dt.datetime.now(dt.UTC),
        )


def counts(store: Store) -> dict[str, int]:
    d = tables.delivery
    return dict(store.db.read(lambda c: c.execute(sa.select(d.c.state, sa.func.count()).group_by(d.c.state)).all()))


def leased_by(store: Store, pid: int) -> int:
    d = tables.delivery
    return int(
        store.db.read(
            lambda c: c.execute(
                sa.select(sa.func.count())
                .select_from(d)
                .where(d.c.state == "in_flight", d.c.lease_owner.like(f"%:{pid}:%"))
            ).scalar_one()
        )
    )


def until(pg_url: str, predicate: Callable[[], bool], timeout: float) -> bool:
    """Recheck ``predicate`` on every settle notification (and at least twice a second) until it holds."""
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timeout)
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"LISTEN {notify.SETTLED}")
        while not predicate():
            remaining = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
            if remaining <= 0:
                return False
            for _ in conn.notifies(timeout=min(0.5, remaining), stop_after=1):
                pass
    return True


def sandbox_stats(sandbox: str) -> dict[str, dict[str, Any]]:
    return {t: httpx.get(f"{sandbox}/_admin/{t}/stats").json() for t in TARGETS}


@pytest.mark.slow
@pytest.mark.timeout(420)  # its own waits are bounded (30 s per kill, 180 s to drain); pytest's default is shorter
def test_workers_killed_mid_push_lose_nothing(pg_url: str, sandbox: str, tmp_path: Path) -> None:
    records = 2000
    for target, latency in (("national", 120), ("provincial", 80), ("municipal", 80), ("portal", 15)):
        httpx.put(f"{sandbox}/_admin/{target}/faults", json={"latency_ms": latency}).raise_for_status()
    store = Store(Database(pg_url), {Kind.LICENCE: TARGETS})
    ingest(store, records)
    workers = Workers(worker_env(pg_url, sandbox, batch=20), tmp_path)
    for _ in range(2):
        workers.start()
    kills = 0
    try:
        while kills < 24 and counts(store).get("published", 0) < records * len(TARGETS):
            victim = workers.running[0]
            if not until(pg_url, lambda v=victim: leased_by(store, v.pid) > 0, timeout=30):
                break  # nothing left to take from it
            victim.send_signal(signal.SIGKILL)  # mid-push: it holds leases and its requests are under way
            victim.wait(timeout=30)
            workers.running.remove(victim)
            kills += 1
            workers.start()
        assert kills >= 20, f"only {kills} kills landed while pushes were in flight"
        assert until(pg_url, lambda: counts(store) == {"published": records * len(TARGETS)}, timeout=180), counts(store)
    finally:
        workers.stop_all()
        store.db.dispose()
    for target, found in sandbox_stats(sandbox).items():
        assert (found["unique_keys"], found["public"], found["rejected"]) == (records, records, 0), (target, found)
        # re-sends after a kill carry the same key: the platform counts them as duplicates, not as new items
        assert found["received_items"] == found["unique_keys"] + found["duplicate_deliveries"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_workers_share_the_work_without_sending_anything_twice(pg_url: str, sandbox: str, tmp_path: Path) -> None:
    records = 5000
    store = Store(Database(pg_url), {Kind.LICENCE: TARGETS})
    ingest(store, records)
    # no process dies here, so leases long enough that a busy machine's late heartbeat cannot expire one: an item
    # leased twice then means two workers took the same row, which is what this test is about
    workers = Workers(worker_env(pg_url, sandbox, batch=100, lease_seconds=30), tmp_path)
    try:
        for _ in range(3):
            workers.start()
        assert until(pg_url, lambda: counts(store) == {"published": records * len(TARGETS)}, timeout=240), counts(store)
    finally:
        workers.stop_all()
    d, a = tables.delivery, tables.attempt
    leased_more_than_once = store.db.read(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(d).where(d.c.attempts != 1)).scalar_one()
    )
    outcomes = dict(
        store.db.read(lambda c: c.execute(sa.select(a.c.outcome, sa.func.count()).group_by(a.c.outcome)).all())
    )
    store.db.dispose()
    assert leased_more_than_once == 0
    for target, found in sandbox_stats(sandbox).items():
        assert found["received_items"] == found["unique_keys"] == records, (target, found)
        assert found["duplicate_deliveries"] == 0
    # one receipt per item on each two-stage platform, then one acceptance per item on every platform
    assert outcomes == {"received": records * 2, "accepted": records * len(TARGETS)}
