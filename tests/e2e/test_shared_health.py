"""One breaker per target across processes: ``serve`` (no delivery of its own) and two ``worker`` processes on
PostgreSQL, the sandbox's municipal platform failing every request.

What is judged: every surface (API, ``targets status``, ``/metrics`` of serve and of each worker) shows the
breaker open within 5 s; while it is open neither worker sends to municipal, counted at the sandbox (its
``requests`` counter): from a moment with the breaker open and nothing in flight, until two half-open probes
have failed, the platform saw exactly two requests, one per probe, whichever worker took it; once the fault is
cleared the next probe closes the breaker and the backlog drains.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa

from adapters.sandbox.app import create_sandbox
from outbox import tables
from outbox.database import Database
from outbox.store import Store
from tests import live
from tests.conftest import bearer
from tests.e2e.test_cli import CLI, free_port, running
from tests.factories import licence

TARGETS = ("national", "provincial", "municipal", "portal")
RECORDS = 30
T = TypeVar("T")


def environment(pg_url: str, sandbox: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_GATEWAY_")}
    env |= {
        "CREDIT_GATEWAY_DATABASE_URL": pg_url,
        "CREDIT_GATEWAY_DELIVERY__IN_SERVE": "false",
        "CREDIT_GATEWAY_JOBS__IN_SERVE": "false",
        "CREDIT_GATEWAY_DELIVERY__BREAKER_FAILURES": "3",
        "CREDIT_GATEWAY_DELIVERY__BREAKER_OPEN_SECONDS": "2",
        "CREDIT_GATEWAY_DELIVERY__MAX_ATTEMPTS": "1000",
        "CREDIT_GATEWAY_DELIVERY__INITIAL_BACKOFF_SECONDS": "0.1",
        "CREDIT_GATEWAY_DELIVERY__MAX_BACKOFF_SECONDS": "0.5",
        "CREDIT_GATEWAY_DELIVERY__PUSH_INTERVAL_SECONDS": "0.3",
        "CREDIT_GATEWAY_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
        "CREDIT_GATEWAY_DELIVERY__REAP_INTERVAL_SECONDS": "0.5",
        "CREDIT_GATEWAY_DELIVERY__LEASE_SECONDS": "10",
    }
    for target in TARGETS:
        env[f"CREDIT_GATEWAY_TARGETS__{target.upper()}__BASE_URL"] = f"{sandbox}/{target}"
        env[f"CREDIT_GATEWAY_TARGETS__{target.upper()}__BATCH_SIZE"] = "5"
    return env


@contextmanager
def worker(env: dict[str, str], cwd: Path) -> Iterator[tuple[str, int]]:
    """A ``credit-gateway worker`` with its probe port: (probe base URL, pid), once it says where it listens."""
    proc = subprocess.Popen(
        [*CLI, "worker", "--metrics-port", "0"], env=env, cwd=cwd, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    seen: list[str] = []
    port = None
    for line in proc.stderr:  # blocks until the worker writes; no polling
        seen.append(line)
        if (port := re.search(r"worker probes on http://127\.0\.0\.1:(\d+)", line)) is not None:
            break
    drain = threading.Thread(target=seen.extend, args=(proc.stderr,), daemon=True)
    drain.start()
    try:
        assert port is not None, "".join(seen)
        yield f"http://127.0.0.1:{port.group(1)}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        drain.join(timeout=10)
        proc.stderr.close()
    assert proc.returncode == 0 and not any("Traceback" in line for line in seen), "".join(seen)


def poll(read: Callable[[], T], ok: Callable[[T], bool], within: float, what: str) -> T:
    """Read until ``ok`` holds or ``within`` seconds pass (each read is a real request or query)."""
    deadline = time.monotonic() + within
    while True:
        value = read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value!r} after {within} s"


def municipal_row(store: Store) -> Any:
    h, d = tables.target_health, tables.delivery

    def read(c: Any) -> Any:
        row = c.execute(sa.select(h).where(h.c.target == "municipal")).one_or_none()
        flying = c.execute(
            sa.select(sa.func.count()).where(d.c.target == "municipal", d.c.state == "in_flight")
        ).scalar_one()
        return row, flying

    return store.db.read(read)


def last_attempt(store: Store) -> int:
    return int(store.db.read(lambda c: c.execute(sa.select(sa.func.max(tables.attempt.c.id))).scalar_one() or 0))


def probe_attempts(store: Store, after: int) -> list[dt.datetime]:
    """When municipal attempts after attempt ``after`` were recorded (each a one-item probe while it is open)."""
    a, d = tables.attempt, tables.delivery
    return list(
        store.db.read(
            lambda c: c.execute(
                sa.select(a.c.at)
                .join(d, d.c.id == a.c.delivery_id)
                .where(d.c.target == "municipal", a.c.id > after)
                .order_by(a.c.at)
            ).scalars()
        )
    )


def requests(sandbox: str) -> int:
    return int(httpx.get(f"{sandbox}/_admin/municipal/stats").json()["requests"])


def quiet_open(store: Store, sandbox: str) -> tuple[dt.datetime, int]:
    """(opened_at, requests so far) at a moment the breaker is open, nothing is in flight, and no probe ran
    between the two reads of the row around the count."""

    def read() -> tuple[Any, int, Any]:
        first = municipal_row(store)
        count = requests(sandbox)
        return first, count, municipal_row(store)

    def quiet(found: tuple[Any, int, Any]) -> bool:
        (row, flying), _, (again, flying_again) = found
        return (
            row is not None
            and row.breaker == "open"
            and (flying, flying_again) == (0, 0)
            and (again.breaker, again.opened_at) == ("open", row.opened_at)
        )

    (row, _), count, _ = poll(read, quiet, 10, "municipal open and quiet")
    return row.opened_at, count


def metric(text: str, name: str) -> str | None:
    found = re.search(rf'^credit_gateway_{name}{{target="municipal"}} (\S+)$', text, re.M)
    return found.group(1) if found else None


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_one_breaker_across_serve_and_two_workers(pg_url: str, tmp_path: Path) -> None:
    store = Store(Database(pg_url), {})
    key, _ = store.create_key(
        name="credit-office", role="operator", kinds=None, actor="test", now=dt.datetime.now(dt.UTC)
    )
    source, _ = store.create_key(
        name="approval-system", role="source", kinds=None, actor="test", now=dt.datetime.now(dt.UTC)
    )
    port = free_port()
    with ExitStack() as stack:
        sandbox = stack.enter_context(live.serve(create_sandbox(result_delay=0)))
        env = environment(pg_url, sandbox) | {"CREDIT_GATEWAY_PORT": str(port)}
        stack.enter_context(running(["serve"], env, tmp_path))
        base = f"http://127.0.0.1:{port}"
        probes = [stack.enter_context(worker(env, tmp_path)) for _ in range(2)]
        http = stack.enter_context(httpx.Client(base_url=base, timeout=30))

        def api_breaker() -> str:
            shown = http.get("/api/v1/targets", headers=bearer(key)).json()["targets"]
            return str(next(t for t in shown if t["target"] == "municipal")["health"]["breaker"])

        assert api_breaker() == "closed"
        httpx.put(f"{sandbox}/_admin/municipal/faults", json={"error_rate": 1.0}).raise_for_status()
        for i in range(RECORDS):
            posted = http.post("/api/v1/licences", json=licence(f"H{i:03d}"), headers=bearer(source))
            assert posted.status_code == 201, posted.text
        started = time.monotonic()  # after the posts: how fast 30 posts go on a loaded machine is not the point

        # every surface shows it open within 5 s of the records; a probe may show half-open for a moment
        def surfaces() -> list[str | None]:
            shown = [api_breaker(), metric(http.get("/metrics").text, "target_up")]
            return shown + [metric(httpx.get(f"{probe}/metrics").text, "target_up") for probe, _ in probes]

        poll(surfaces, lambda found: found == ["open", "0.0", "0.0", "0.0"], 5, "API, serve's and workers' metrics")
        assert time.monotonic() - started <= 5
        status = poll(
            lambda: subprocess.run([*CLI, "targets", "status"], env=env, cwd=tmp_path, capture_output=True, text=True),
            lambda r: " open (" in next(line for line in r.stdout.splitlines() if "municipal" in line),
            20,
            "targets status",
        )
        row_shown = next(line for line in status.stdout.splitlines() if "municipal" in line)
        assert " 500 " in row_shown, row_shown  # the last failure: HTTP 500 and its message

        # neither worker sends while it is open: from a quiet open moment until two probes failed, every request
        # the platform saw is a single-item probe, and the probes are an open period apart (one process each time)
        _, before = quiet_open(store, sandbox)
        settled = last_attempt(store)  # quiet: every exchange so far is settled, its attempts written
        probes_seen, after, _ = poll(
            lambda: (probe_attempts(store, settled), quiet_open(store, sandbox)[1], probe_attempts(store, settled)),
            lambda found: len(found[0]) >= 2 and found[0] == found[2],  # no probe between the reads
            20,
            "two half-open probes",
        )
        assert after - before == len(probes_seen), (after - before, probes_seen)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(probes_seen)]
        assert all(gap >= 1.9 for gap in gaps), gaps  # BREAKER_OPEN_SECONDS=2 between probes, whoever sent

        # cleared: the next probe closes it, and the backlog drains to every target
        httpx.delete(f"{sandbox}/_admin/municipal/faults").raise_for_status()
        poll(api_breaker, lambda b: b == "closed", 15, "the API's municipal breaker after the fault")
        counts = poll(
            lambda: http.get("/api/v1/targets", headers=bearer(key)).json()["targets"],
            lambda shown: all(t["deliveries"] == {"published": RECORDS} for t in shown),
            60,
            "the backlog drained",
        )
        assert len(counts) == len(TARGETS)
        assert metric(http.get("/metrics").text, "target_up") == "1.0"
        health = next(t for t in counts if t["target"] == "municipal")["health"]
        assert health["consecutive_failures"] == 0 and health["last_failure"]["code"] == "500"
        assert health["last_success_at"] is not None
    store.db.dispose()
