"""The delivery worker running for real (APScheduler, wake-ups, breaker) against the sandbox over loopback.

Push ticks are set to 30 s, so a delivery long before the first tick can only come from the wake-up. Waiting is event
driven: the sandbox's long-poll ``/_admin/{target}/wait`` and a queue fed by the worker's ``on_settled``.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from adapters.sandbox.app import create_sandbox
from gateway.app import build_app
from gateway.clock import ShiftableClock
from gateway.settings import DeliverySettings, Settings
from gateway.targets import build_clients, point_at_sandbox
from gateway.worker import Worker
from outbox import notify, tables
from outbox.database import Database
from outbox.ingest import Actor, Incoming
from outbox.store import Store
from schemas.enums import Kind
from schemas.validation import Canonical, validate
from tests import live
from tests.conftest import PG_ADMIN, _pg_admin, _pg_url, bearer
from tests.factories import licence

TARGETS = ("national", "provincial", "municipal", "portal")
# Push ticks are 30 s apart: a delivery well before the first tick can only come from the wake-up. A quiet machine
# takes well under a second; the bound leaves room for a loaded one without letting a tick pass for a wake-up.
WOKEN_WITHIN = 10.0


@pytest.fixture
def clock() -> ShiftableClock:  # a running worker needs time to pass; tests skip ahead with advance()
    return ShiftableClock()


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


def delivery_settings(settings: Settings, sandbox: str, **changes: Any) -> Settings:
    point_at_sandbox(settings, sandbox)
    changes.setdefault("push_interval_seconds", 30)
    settings.delivery = DeliverySettings(poll_interval_seconds=0.2, **changes)
    return settings


def wait(sandbox: str, target: str, **numbers: int) -> dict[str, int]:
    response = httpx.get(f"{sandbox}/_admin/{target}/wait", params=numbers | {"timeout": 10}, timeout=15)
    assert response.status_code == 200, f"{target} never reached {numbers}: {response.json()}"
    return response.json()


def state_counts(store: Store) -> dict[str, int]:
    d = tables.delivery
    rows = store.db.read(lambda c: c.execute(sa.select(d.c.state, sa.func.count()).group_by(d.c.state)).all())
    return dict(rows)  # type: ignore[arg-type]


def until_settled(events: queue.Queue[tuple[str, int]], store: Store, predicate: Any) -> None:
    """Block on the worker's settle events until ``predicate(state counts)`` holds (10 s at most)."""
    deadline = time.monotonic() + 10
    while not predicate(state_counts(store)):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"deliveries did not settle: {state_counts(store)}"
        try:
            events.get(timeout=remaining)
        except queue.Empty:
            continue


def test_a_posted_record_is_pushed_within_a_second_and_published(
    settings: Settings, store: Store, clock: ShiftableClock, source_key: str, sandbox: str
) -> None:
    delivery_settings(settings, sandbox)
    events: queue.Queue[tuple[str, int]] = queue.Queue()
    worker = Worker(settings, store, build_clients(settings, clock), clock, on_settled=lambda t, n: events.put((t, n)))
    with live.serve(build_app(settings, store=store, clock=clock, worker=worker)) as base:
        started = time.monotonic()
        assert httpx.post(f"{base}/api/v1/licences", json=licence(), headers=bearer(source_key)).status_code == 201
        for target in TARGETS:
            wait(sandbox, target, unique_keys=1)
        assert time.monotonic() - started < WOKEN_WITHIN, "the ingest did not wake the push loop"
        until_settled(events, store, lambda counts: counts == {"published": 4})
        status = httpx.get(
            f"{base}/api/v1/targets",
            headers=bearer(store.create_key(name="office", role="operator", kinds=None, actor="t", now=clock.now())[0]),
        ).json()["targets"]
        assert {t["target"]: t["deliveries"] for t in status} == {t: {"published": 1} for t in TARGETS}
        assert {t["health"]["breaker"] for t in status} == {"closed"}


def test_an_outage_opens_one_breaker_and_the_backlog_drains_after(
    settings: Settings, store: Store, clock: ShiftableClock, source_key: str, sandbox: str
) -> None:
    # no tick: pushes happen only when woken, so a tick cannot probe the target at a moment the test did not choose
    delivery_settings(
        settings,
        sandbox,
        breaker_failures=1,
        breaker_open_seconds=30,
        initial_backoff_seconds=5,
        alert_after_seconds=20,
        push_interval_seconds=3600,
    )
    events: queue.Queue[tuple[str, int]] = queue.Queue()
    worker = Worker(settings, store, build_clients(settings, clock), clock, on_settled=lambda t, n: events.put((t, n)))
    now = time.time()
    httpx.put(f"{sandbox}/_admin/national/faults", json={"outage_start": now - 1, "outage_end": now + 3600})
    with live.serve(build_app(settings, store=store, clock=clock, worker=worker)) as base:
        for i in range(3):
            httpx.post(f"{base}/api/v1/licences", json=licence(f"O{i}"), headers=bearer(source_key))
        for target in ("provincial", "municipal", "portal"):  # the others are not delayed by national's outage
            wait(sandbox, target, unique_keys=3)
        until_settled(events, store, lambda c: c.get("published", 0) == 9 and c.get("retry_wait", 0) >= 1)
        assert worker.gates["national"].state == "open"
        waiting = state_counts(store)  # the backlog waits in the database: not leased while the breaker is open
        assert waiting.get("retry_wait", 0) + waiting.get("pending", 0) == 3 and "in_flight" not in waiting
        assert worker.gates["municipal"].state == "closed"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'credit_gateway_target_up{target="national"} 0.0' in metrics
        assert 'credit_gateway_target_up{target="municipal"} 1.0' in metrics
        assert 'credit_gateway_target_alert{target="national"} 0.0' in metrics  # not down for 20 s yet
        # skip past the alert threshold and the breaker's open time (not minutes: national signatures would expire)
        clock.advance(dt.timedelta(seconds=31))
        assert 'credit_gateway_target_alert{target="national"} 1.0' in httpx.get(f"{base}/metrics").text

        httpx.delete(f"{sandbox}/_admin/national/faults")
        worker.wake(["national"])
        until_settled(events, store, lambda c: c == {"published": 12})
        assert worker.gates["national"].state == "closed"
        assert httpx.get(f"{sandbox}/_admin/national/stats").json()["unique_keys"] == 3


def test_stopping_leaves_nothing_in_flight(
    settings: Settings, store: Store, clock: ShiftableClock, sandbox: str
) -> None:
    delivery_settings(settings, sandbox)
    httpx.put(f"{sandbox}/_admin/portal/faults", json={"latency_ms": 200})
    actor = Actor("approval-system", "source")
    items = []
    for i in range(20):
        data = licence(f"G{i}")
        canonical = validate(Kind.LICENCE, data, today=dt.date(2026, 11, 25))
        assert isinstance(canonical, Canonical)
        items.append(Incoming(canonical, data))
    store.ingest(source_system="approval-system", kind=Kind.LICENCE, items=items, actor=actor, now=clock.now())
    worker = Worker(settings, store, build_clients(settings, clock), clock)
    worker.start()
    wait(sandbox, "portal", unique_keys=1)  # the portal is mid-batch (200 ms per notice)
    worker.stop()
    counts = state_counts(store)
    assert counts.get("in_flight", 0) == 0, counts
    d = tables.delivery
    published = store.db.read(
        lambda c: c.execute(
            sa.select(sa.func.count()).select_from(d).where(d.c.target == "portal", d.c.state == "published")
        ).scalar_one()
    )
    received = httpx.get(f"{sandbox}/_admin/portal/stats").json()["unique_keys"]
    assert published == received > 0  # the batch under way when stop came was finished and settled


class Notified:
    """A worker on its own PostgreSQL database, and a second store standing for an ingest in another process."""

    def __init__(self, pg_template: str, sandbox: str) -> None:
        self.name, self.sandbox = f"cgtest_notify_{uuid.uuid4().hex[:8]}", sandbox
        _pg_admin(f'CREATE DATABASE "{self.name}" TEMPLATE "{pg_template}" STRATEGY FILE_COPY')
        settings = delivery_settings(Settings(database_url=_pg_url(self.name)), sandbox)
        self.clock = ShiftableClock()
        self.worker_store = Store(Database(settings.database_url), settings.targets.routes())
        self.ingest_store = Store(Database(settings.database_url), settings.targets.routes())
        self.worker = Worker(settings, self.worker_store, build_clients(settings, self.clock), self.clock)

    def ingest(self, number: str) -> None:
        data = licence(number)
        canonical = validate(Kind.LICENCE, data, today=dt.date(2026, 11, 25))
        assert isinstance(canonical, Canonical)
        self.ingest_store.ingest(
            source_system="approval-system",
            kind=Kind.LICENCE,
            items=[Incoming(canonical, data)],
            actor=Actor("approval-system", "source"),
            now=self.clock.now(),
        )

    def delivered_within(self, count: int, seconds: float) -> None:
        """``count`` records reach the municipal platform, well before a push tick could have sent them."""
        started = time.monotonic()
        wait(self.sandbox, "municipal", unique_keys=count)
        assert time.monotonic() - started < seconds, "nothing woke the worker"

    def close(self) -> None:
        self.worker.stop()
        self.worker_store.db.dispose()
        self.ingest_store.db.dispose()
        _pg_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture
def notified(pg_template: str, sandbox: str) -> Iterator[Notified]:
    setup = Notified(pg_template, sandbox)
    try:
        yield setup
    finally:
        setup.close()


def test_ingest_in_another_process_wakes_the_worker_through_postgres(notified: Notified) -> None:
    notified.worker.start()
    assert notified.worker.listening.wait(WOKEN_WITHIN)  # so only the NOTIFY can wake it for what comes next
    wait(notified.sandbox, "municipal", unique_keys=0)
    notified.ingest("N1")
    notified.delivered_within(1, WOKEN_WITHIN)


def test_a_failing_callback_does_not_end_the_listener(pg_url: str) -> None:
    db = Database(pg_url)
    stopping, listening, woken = threading.Event(), threading.Event(), queue.Queue[list[str]]()

    def fail() -> None:
        listening.set()
        raise RuntimeError("a callback's own bug")

    listener = threading.Thread(target=notify.listen, args=(db, stopping, woken.put, fail), daemon=True)
    listener.start()
    try:
        assert listening.wait(WOKEN_WITHIN)
        db.transact(lambda conn: notify.notify(conn, ["portal"]))
        assert woken.get(timeout=WOKEN_WITHIN) == ["portal"]
    finally:
        stopping.set()
        listener.join(WOKEN_WITHIN)
        db.dispose()
    assert not listener.is_alive()


def test_a_listener_back_from_a_lost_connection_looks_for_work_that_came_meanwhile(notified: Notified) -> None:
    """An ingest committed while the listener was away notified no one; listening again must find it anyway."""
    notified.worker.start()
    notified.ingest("N1")  # the worker is up and every connection the test relies on below is open in a pool
    notified.delivered_within(1, WOKEN_WITHIN)
    assert notified.worker.listening.wait(WOKEN_WITHIN)
    listening = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query = %s"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        (pid,) = admin.execute(listening, (notified.name, f"LISTEN {notify.CHANNEL}")).fetchone() or (None,)
        assert pid is not None, "the worker is not listening"
        admin.execute(f'ALTER DATABASE "{notified.name}" ALLOW_CONNECTIONS false')  # type: ignore[arg-type]
        try:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)
            notified.ingest("N2")  # on a pooled connection; its NOTIFY reaches nobody
        finally:
            admin.execute(f'ALTER DATABASE "{notified.name}" ALLOW_CONNECTIONS true')  # type: ignore[arg-type]
    notified.delivered_within(2, WOKEN_WITHIN)
