"""The running worker against a misbehaving sandbox: timeouts, malformed replies, throttling, rejections, order."""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.sandbox.app import create_sandbox
from gateway.app import build_app
from gateway.clock import ShiftableClock
from gateway.settings import DeliverySettings, Settings
from gateway.targets import build_clients, point_at_sandbox
from gateway.worker import Worker
from outbox import tables
from outbox.store import Store
from tests import live
from tests.conftest import bearer
from tests.factories import licence


@pytest.fixture
def clock() -> ShiftableClock:
    return ShiftableClock()


@pytest.fixture
def sandbox_app() -> Any:
    return create_sandbox(result_delay=0)


@pytest.fixture
def sandbox(sandbox_app: Any) -> Iterator[str]:
    with live.serve(sandbox_app) as url:
        yield url


@pytest.fixture
def municipal_timeout() -> float | None:
    """The municipal client's timeout: the settings' own unless a test shortens it (a short one everywhere let
    a loaded machine turn a throttled or refused first attempt into a timeout)."""
    return None


@pytest.fixture
def running(
    settings: Settings, store: Store, clock: ShiftableClock, sandbox: str, municipal_timeout: float | None
) -> Iterator[tuple[str, Any]]:
    """The gateway with its worker, only the municipal and national targets on; (base URL, settle events)."""
    point_at_sandbox(settings, sandbox)
    settings.targets.provincial.enabled = settings.targets.portal.enabled = False
    if municipal_timeout is not None:
        settings.targets.municipal.timeout_seconds = municipal_timeout
    settings.delivery = DeliverySettings(
        push_interval_seconds=30,
        poll_interval_seconds=0.2,
        initial_backoff_seconds=0.3,
        max_backoff_seconds=1,
        breaker_failures=50,
    )
    store.routes = settings.targets.routes()
    events: queue.Queue[int] = queue.Queue()
    worker = Worker(settings, store, build_clients(settings, clock), clock, on_settled=lambda t, n: events.put(n))
    with live.serve(build_app(settings, store=store, clock=clock, worker=worker)) as base:
        yield base, (worker, events)


def deliveries(store: Store, target: str) -> list[Any]:
    d = tables.delivery
    return store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == target).order_by(d.c.id)).all())


def attempts(store: Store, delivery_id: int) -> list[Any]:
    a = tables.attempt
    return store.db.read(lambda c: c.execute(sa.select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.id)).all())


def settle_until(store: Store, events: queue.Queue[int], target: str, predicate: Any, worker: Worker) -> list[Any]:
    deadline = time.monotonic() + 15
    while True:
        rows = deliveries(store, target)
        if predicate(rows):
            return rows
        remaining = deadline - time.monotonic()
        assert remaining > 0, [(r.version, r.state, r.last_code) for r in rows]
        worker.wake([target])  # retry_wait rows come due by time; wake rather than wait for the 30 s tick
        with contextlib.suppress(queue.Empty):
            events.get(timeout=min(remaining, 0.5))


def faults(sandbox: str, target: str, **settings: Any) -> None:
    if settings:
        httpx.put(f"{sandbox}/_admin/{target}/faults", json=settings).raise_for_status()
    else:
        httpx.delete(f"{sandbox}/_admin/{target}/faults").raise_for_status()


@pytest.mark.parametrize("municipal_timeout", [0.5])
def test_a_timeout_is_retried_with_the_same_key(running: Any, store: Store, source_key: str, sandbox: str) -> None:
    base, (worker, events) = running
    faults(sandbox, "municipal", timeout_rate=1.0, hang_seconds=2)  # processes, then answers too late
    httpx.post(f"{base}/api/v1/licences", json=licence(), headers=bearer(source_key))
    settle_until(store, events, "municipal", lambda rows: rows[0].state == "retry_wait", worker)
    faults(sandbox, "municipal")
    [row] = settle_until(store, events, "municipal", lambda rows: rows[0].state == "published", worker)
    assert [a.outcome for a in attempts(store, row.id)][:1] == ["retryable"]
    assert attempts(store, row.id)[0].code == "timeout"
    stats = httpx.get(f"{sandbox}/_admin/municipal/stats").json()
    assert (stats["unique_keys"], stats["public"]) == (1, 1)  # the platform holds it once...
    assert stats["duplicate_deliveries"] >= 1  # ...although it arrived again, under the same key


def test_malformed_replies_are_retried(running: Any, store: Store, source_key: str, sandbox: str) -> None:
    base, (worker, events) = running
    faults(sandbox, "national", malformed_rate=1.0, malformed_kind="html")
    httpx.post(f"{base}/api/v1/licences", json=licence(), headers=bearer(source_key))
    [row] = settle_until(store, events, "national", lambda rows: rows[0].attempts >= 2, worker)
    assert {a.code for a in attempts(store, row.id)} == {"wrong_content_type"}
    faults(sandbox, "national")
    settle_until(store, events, "national", lambda rows: rows[0].state == "published", worker)


def test_retry_after_is_honoured(
    running: Any, store: Store, clock: ShiftableClock, source_key: str, sandbox: str
) -> None:
    base, (worker, events) = running
    faults(sandbox, "municipal", throttle_rate=1.0, retry_after_seconds=120)
    httpx.post(f"{base}/api/v1/licences", json=licence(), headers=bearer(source_key))
    [row] = settle_until(store, events, "municipal", lambda rows: rows[0].state == "retry_wait", worker)
    assert row.next_attempt_at - row.updated_at >= dt.timedelta(seconds=120)
    faults(sandbox, "municipal")
    worker.wake(["municipal"])
    assert deliveries(store, "municipal")[0].state == "retry_wait"  # not before the platform's Retry-After
    clock.advance(dt.timedelta(seconds=121))
    settle_until(store, events, "municipal", lambda rows: rows[0].state == "published", worker)


def test_a_throttling_token_endpoint_is_waited_for(
    running: Any, store: Store, clock: ShiftableClock, source_key: str, sandbox: str
) -> None:
    """Issue 8 defect 5: the municipal token endpoint's 429 + Retry-After holds the delivery and the target."""
    base, (worker, events) = running
    faults(sandbox, "municipal", token_throttle_rate=1.0, retry_after_seconds=120)
    httpx.post(f"{base}/api/v1/licences", json=licence(), headers=bearer(source_key))
    [row] = settle_until(store, events, "municipal", lambda rows: rows[0].state == "retry_wait", worker)
    assert row.last_code == "429"
    assert row.next_attempt_at - row.updated_at >= dt.timedelta(seconds=120)  # not the 0.3 s backoff
    status = worker.status()["municipal"]
    assert status["held_until"] is not None and status["breaker"] == "closed"  # waiting, not down
    faults(sandbox, "municipal")
    worker.wake(["municipal"])
    assert deliveries(store, "municipal")[0].state == "retry_wait"  # not before the token endpoint's Retry-After
    assert len(attempts(store, row.id)) == 1
    clock.advance(dt.timedelta(seconds=121))
    settle_until(store, events, "municipal", lambda rows: rows[0].state == "published", worker)


def test_a_rejection_is_dead_lettered_then_fixed_at_the_source(
    running: Any, store: Store, source_key: str, sandbox: str
) -> None:
    base, (worker, events) = running
    faults(
        sandbox,
        "national",
        reject_rule={
            "field": "XK_XDR_MC",
            "equals": "怀化市鹤城建筑工程有限公司",
            "code": "2004",
            "message": "相对人名称与登记信息不一致",
        },
    )
    httpx.post(f"{base}/api/v1/licences", json=licence(), headers=bearer(source_key))
    [dead] = settle_until(store, events, "national", lambda rows: rows[0].state == "dead", worker)
    assert (dead.last_code, dead.last_message) == ("2004", "相对人名称与登记信息不一致")
    view = httpx.get(f"{base}/api/v1/licences/XK-2026-000123", headers=bearer(source_key)).json()
    national = next(d for d in view["deliveries"] if d["target"] == "national")
    assert national["state"] == "dead" and national["attempts"][-1]["message"] == "相对人名称与登记信息不一致"

    fixed = licence(counterpart__name="怀化市鹤城建筑工程有限责任公司")
    assert httpx.post(f"{base}/api/v1/licences", json=fixed, headers=bearer(source_key)).status_code == 201
    rows = settle_until(store, events, "national", lambda r: len(r) == 2 and r[1].state == "published", worker)
    assert [(r.version, r.state) for r in rows] == [(1, "superseded"), (2, "published")]


def test_corrections_and_withdrawals_arrive_in_order(
    running: Any, store: Store, source_key: str, sandbox: str, sandbox_app: Any
) -> None:
    base, (worker, events) = running
    faults(sandbox, "national", latency_ms=60)  # so versions pile up behind the one in flight

    def churn(n: int) -> None:
        with httpx.Client(base_url=base, headers=bearer(source_key)) as http:
            for version in range(1, 6):
                http.post("/api/v1/licences", json=licence(f"Q{n}", content=f"第{version}版"))
            http.post(f"/api/v1/licences/Q{n}/withdraw", json={"reason": "revoked"})

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = settle_until(
        store,
        events,
        "national",
        lambda r: all(x.state in ("published", "superseded", "cancelled", "dead") for x in r),
        worker,
    )
    assert not [r for r in rows if r.state == "dead"]
    received = sandbox_app.state.sandbox.state.db.execute(
        "SELECT record_id, key FROM item WHERE target = 'national' ORDER BY rowid"
    ).fetchall()
    by_record: dict[str, list[str]] = {}
    for record_id, key in received:
        by_record.setdefault(record_id, []).append(key)
    superseded = {r.idempotency_key for r in rows if r.state == "superseded"}
    # A record whose whole churn landed before its first lease was never published, so its withdrawal is
    # cancelled rather than sent: it must then leave no trace on the platform at all.
    withdrawn_sent = {
        r.idempotency_key.split("-")[1] for r in rows if r.operation == "withdraw" and r.state == "published"
    }
    unsent = {r.idempotency_key.split("-")[1] for r in rows} - withdrawn_sent
    assert {f"hhzjj-{i}" for i in withdrawn_sent} == set(by_record)
    assert all(r.state in ("superseded", "cancelled") for r in rows if r.idempotency_key.split("-")[1] in unsent)
    assert len(withdrawn_sent) >= 3  # 60 ms of latency per push: most records get a version out first
    for record_id, keys in by_record.items():
        versions = [int(k.split("-v")[1].split("-")[0]) for k in keys]
        assert versions == sorted(versions), (record_id, keys)  # never n+1 before n
        assert keys[-1].endswith("-w-national"), (record_id, keys)  # the withdrawal comes last
        assert not superseded & set(keys)  # superseded versions are never sent
    assert httpx.get(f"{sandbox}/_admin/national/stats").json()["withdrawn"] == len(withdrawn_sent)
