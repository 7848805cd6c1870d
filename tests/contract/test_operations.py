"""Operator actions through the API on SQLite and PostgreSQL, with the engine and the sandbox for real."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.sandbox.app import create_sandbox
from gateway.clock import ShiftableClock
from gateway.settings import Settings
from gateway.targets import build_clients, point_at_sandbox
from gateway.worker import Worker
from outbox import tables
from outbox.store import Store
from tests import live
from tests.conftest import bearer
from tests.factories import NAME_MISMATCH, licence

REJECT = {"reject_rule": NAME_MISMATCH}


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


@pytest.fixture
def worker(settings: Settings, store: Store, sandbox: str) -> Iterator[Worker]:
    """A worker that is not started: tests call ``drain`` themselves."""
    point_at_sandbox(settings, sandbox)
    clock = ShiftableClock()
    built = Worker(settings, store, build_clients(settings, clock), clock)
    yield built
    for client in built.clients.values():
        client.close()


def audit(store: Store, action: str) -> list[Any]:
    a = tables.audit_event
    return store.db.read(lambda c: c.execute(sa.select(a).where(a.c.action == action)).all())


def state(store: Store, target: str) -> list[tuple[int, str, int]]:
    d = tables.delivery
    rows = store.db.read(
        lambda c: c.execute(
            sa.select(d.c.id, d.c.state, d.c.attempts).where(d.c.target == target).order_by(d.c.id)
        ).all()
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_dead_letters_listed_requeued_and_delivered(
    client: httpx.Client, store: Store, worker: Worker, source_key: str, operator_key: str, sandbox: str
) -> None:
    httpx.put(f"{sandbox}/_admin/municipal/faults", json=REJECT).raise_for_status()
    client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    worker.drain("municipal")
    [(delivery_id, dead, _)] = state(store, "municipal")
    assert dead == "dead"

    listed = client.get(
        "/api/v1/dead-letters",
        params={"target": "municipal", "code": "2004", "department": "行政审批科"},
        headers=bearer(operator_key),
    ).json()
    assert listed["total"] == 1 and listed["items"][0]["message"] == "名称不一致"
    assert listed["items"][0]["source_id"] == "XK-2026-000123"
    assert (
        client.get("/api/v1/dead-letters", params={"code": "2002"}, headers=bearer(operator_key)).json()["total"] == 0
    )
    assert client.get("/api/v1/dead-letters", headers=bearer(source_key)).status_code == 403

    httpx.delete(f"{sandbox}/_admin/municipal/faults")  # the platform fixed its side
    requeued = client.post("/api/v1/dead-letters/requeue", json={"ids": [delivery_id]}, headers=bearer(operator_key))
    assert requeued.json() == {"requeued": 1}
    assert state(store, "municipal") == [(delivery_id, "pending", 0)]
    worker.drain("municipal")
    assert state(store, "municipal") == [(delivery_id, "published", 1)]
    [event] = audit(store, "delivery.requeue")
    assert (event.actor, event.detail["ids"]) == ("credit-office", [delivery_id])


def test_cancel(client: httpx.Client, store: Store, source_key: str, operator_key: str) -> None:
    client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    [(delivery_id, _, _)] = state(store, "portal")
    done = client.post(
        "/api/v1/dead-letters/cancel",
        json={"ids": [delivery_id], "reason": "门户栏目停用"},
        headers=bearer(operator_key),
    )
    assert done.json() == {"cancelled": 1} and state(store, "portal")[0][1] == "cancelled"
    assert audit(store, "delivery.cancel")[0].detail["reason"] == "门户栏目停用"


def test_a_paused_target_is_not_pushed_until_resumed(
    client: httpx.Client, store: Store, worker: Worker, source_key: str, operator_key: str, sandbox: str
) -> None:
    client.post("/api/v1/licences", json=licence(), headers=bearer(source_key))
    paused = client.post("/api/v1/targets/national/pause", json={"reason": "平台升级"}, headers=bearer(operator_key))
    assert paused.status_code == 200
    worker._paused_read = float("-inf")  # the worker re-reads pauses at most once a second
    worker.drain("national")
    worker.drain("municipal")
    assert state(store, "national")[0][1] == "pending" and state(store, "municipal")[0][1] == "published"
    status = client.get("/api/v1/targets", headers=bearer(operator_key)).json()["targets"]
    assert next(t for t in status if t["target"] == "national")["paused"]["reason"] == "平台升级"
    client.post("/api/v1/targets/national/resume", headers=bearer(operator_key))
    worker._paused_read = float("-inf")
    worker.drain("national")
    assert state(store, "national")[0][1] == "awaiting_result"
    assert [e.action for e in audit(store, "target.pause") + audit(store, "target.resume")] == [
        "target.pause",
        "target.resume",
    ]
    assert client.post("/api/v1/targets/nowhere/pause", headers=bearer(operator_key)).status_code == 404


def test_replay_lists_first_then_sends_again_under_new_keys(
    client: httpx.Client, store: Store, worker: Worker, source_key: str, operator_key: str, sandbox: str
) -> None:
    for i in range(3):
        client.post("/api/v1/licences", json=licence(f"R{i}"), headers=bearer(source_key))
    worker.drain("municipal")
    lost = httpx.post(f"{sandbox}/_admin/municipal/forget", json={"keys": ["hhzjj-1"]}).json()  # the platform lost one
    assert lost == {"forgotten": 1} and httpx.get(f"{sandbox}/_admin/municipal/stats").json()["public"] == 2
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    dry = client.post("/api/v1/targets/municipal/replay", json={"since": since}, headers=bearer(operator_key)).json()
    assert dry["dry_run"] and dry["count"] == 3 and all(i["key"].endswith("-r1") for i in dry["items"])
    assert len(state(store, "municipal")) == 3  # a dry run writes nothing
    sent = client.post(
        "/api/v1/targets/municipal/replay", json={"since": since, "dry_run": False}, headers=bearer(operator_key)
    ).json()
    assert sent["count"] == 3 and len(state(store, "municipal")) == 6
    worker.drain("municipal")
    assert {s for _, s, _ in state(store, "municipal")} == {"published"}
    stats = httpx.get(f"{sandbox}/_admin/municipal/stats").json()
    assert (stats["unique_keys"], stats["public"]) == (6, 3)  # the lost record is held again
    assert audit(store, "target.replay")[0].detail["count"] == 3
