"""Reconciliation against the real sandbox: it loses some records and alters others (its ``forget`` and
``alter`` admin calls); a run finds exactly those, re-pushes them under fresh keys, and a second run finds nothing.
"""

from __future__ import annotations

import contextlib
import logging
import queue
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

TARGETS = ("national", "provincial", "municipal", "portal")


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


@pytest.fixture
def gateway(settings: Settings, store: Store, sandbox: str) -> Iterator[tuple[str, Worker, queue.Queue[int]]]:
    point_at_sandbox(settings, sandbox)
    settings.delivery = DeliverySettings(push_interval_seconds=30, poll_interval_seconds=0.2)
    clock = ShiftableClock()
    events: queue.Queue[int] = queue.Queue()
    worker = Worker(settings, store, build_clients(settings, clock), clock, on_settled=lambda t, n: events.put(n))
    with live.serve(build_app(settings, store=store, clock=clock, worker=worker)) as base:
        yield base, worker, events


def open_deliveries(store: Store) -> int:
    d = tables.delivery
    query = sa.select(sa.func.count()).where(d.c.state.not_in(["published", "superseded", "cancelled", "dead"]))
    return int(store.db.read(lambda c: c.execute(query).scalar_one()))


def drain(store: Store, worker: Worker, events: queue.Queue[int]) -> None:
    deadline = time.monotonic() + 20
    while open_deliveries(store):
        remaining = deadline - time.monotonic()
        assert remaining > 0, "deliveries still open"
        worker.wake(TARGETS)
        with contextlib.suppress(queue.Empty):
            events.get(timeout=min(remaining, 0.5))


def reconcile(base: str, key: str, target: str) -> dict[str, Any]:
    reply = httpx.post(f"{base}/api/v1/targets/{target}/reconcile", headers=bearer(key), timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def ids(run: dict[str, Any], finding: str) -> set[str]:
    return {i["record_id"] for i in run["findings"][finding]}


def test_lost_and_altered_records_are_found_repushed_and_then_clean(
    gateway: Any, store: Store, sandbox: str, source_key: str, operator_key: str
) -> None:
    base, worker, events = gateway
    created = []
    for n in range(6):
        reply = httpx.post(f"{base}/api/v1/licences", json=licence(f"RC-{n}"), headers=bearer(source_key))
        created.append(f"hhzjj-{reply.json()['id']}")
    drain(store, worker, events)

    admin = f"{sandbox}/_admin"
    assert httpx.post(f"{admin}/national/forget", json={"keys": created[:2]}).json()["forgotten"] == 2
    assert (
        httpx.post(
            f"{admin}/municipal/alter", json={"key": created[2], "fields": {"XK_NR": "被改动的许可内容"}}
        ).status_code
        == 200
    )
    assert (
        httpx.post(f"{admin}/portal/alter", json={"key": created[3], "fields": {"许可内容": "被改动"}}).status_code
        == 200
    )
    assert httpx.post(f"{admin}/portal/forget", json={"keys": [created[4]]}).json()["forgotten"] == 1

    runs = {t: reconcile(base, operator_key, t) for t in TARGETS}
    assert (ids(runs["national"], "missing"), ids(runs["national"], "mismatched")) == (set(created[:2]), set())
    assert (ids(runs["municipal"], "missing"), ids(runs["municipal"], "mismatched")) == (set(), {created[2]})
    assert (ids(runs["portal"], "missing"), ids(runs["portal"], "mismatched")) == ({created[4]}, {created[3]})
    assert runs["provincial"]["matched"] == 6 and runs["provincial"]["requeued"] == 0
    for target, run in runs.items():
        assert run["status"] == "done" and run["extra"] == 0, (target, run)
        assert run["requeued"] == run["missing"] + run["mismatched"]
        assert run["matched"] == 6 - run["requeued"]

    drain(store, worker, events)  # the re-pushes, under fresh keys, go out and are accepted
    d = tables.delivery
    repushed = store.db.read(
        lambda c: c.execute(sa.select(d.c.target, d.c.state).where(d.c.idempotency_key.like("%-c1"))).all()
    )
    assert sorted(repushed) == sorted(
        [("national", "published")] * 2 + [("municipal", "published")] + [("portal", "published")] * 2
    )

    again = {t: reconcile(base, operator_key, t) for t in TARGETS}
    for target, run in again.items():
        assert (run["missing"], run["mismatched"], run["extra"], run["requeued"]) == (0, 0, 0, 0), (target, run)
        assert run["matched"] == 6

    listed = httpx.get(f"{base}/api/v1/reconciliations", headers=bearer(operator_key)).json()["items"]
    assert len(listed) == 8 and listed[0]["id"] == again["portal"]["id"]
    one = httpx.get(f"{base}/api/v1/reconciliations/{runs['national']['id']}", headers=bearer(operator_key)).json()
    assert ids(one, "missing") == set(created[:2])
    assert httpx.post(f"{base}/api/v1/targets/national/reconcile", headers=bearer(source_key)).status_code == 403


def test_an_unknown_record_on_the_platform_is_reported_not_touched(
    gateway: Any,
    store: Store,
    sandbox: str,
    source_key: str,
    operator_key: str,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, worker, events = gateway
    reply = httpx.post(f"{base}/api/v1/licences", json=licence("RC-X"), headers=bearer(source_key))
    drain(store, worker, events)
    # Make the platform hold a record we never sent: push one under a foreign record id with our own client.
    from adapters.base import Item, Operation
    from schemas.enums import Kind

    view = httpx.get(f"{base}/api/v1/licences/RC-X", headers=bearer(source_key)).json()
    client = build_clients(settings, ShiftableClock())["municipal"]
    try:
        foreign = Item("other-system-1", "other-77", Kind.LICENCE, Operation.UPSERT, 1, view["record"])
        client.deliver([foreign])
    finally:
        client.close()
    with caplog.at_level(logging.INFO, logger="gateway.reconcile"):
        run = reconcile(base, operator_key, "municipal")
    assert run["extra"] == 1 and ids(run, "extra") == {"other-77"}
    assert run["matched"] == 1 and run["requeued"] == 0
    assert reply.status_code == 201
    [found] = [r for r in caplog.records if getattr(r, "event", None) == "reconciliation_findings"]
    assert found.levelno == logging.WARNING  # a person must look at an extra item
    assert found.fields == {  # type: ignore[attr-defined]
        "target": "municipal",
        "run_id": run["id"],
        "matched": 1,
        "missing": 0,
        "mismatched": 0,
        "extra": 1,
    }
