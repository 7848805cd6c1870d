"""The delivery engine on SQLite and PostgreSQL, against the sandbox platforms over loopback.

Time is a ManualClock (started at the real time, because the national sandbox refuses signatures more than five
minutes off); lease expiry and backoff are crossed by advancing it, never by sleeping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from adapters.client import TargetClient
from adapters.pace import Pace
from adapters.sandbox.app import create_sandbox
from gateway.clock import ManualClock
from gateway.delivery import DeliveryEngine, platform_record_id
from gateway.settings import Settings
from gateway.targets import build_clients, point_at_sandbox
from gateway.worker import Worker
from outbox import tables
from outbox.ingest import Actor, Incoming
from outbox.lifecycle import RetryPolicy
from outbox.store import Store
from schemas.enums import Kind, WithdrawReason
from schemas.validation import Canonical, validate
from tests import live
from tests.factories import commitment, licence

SOURCE = Actor("approval-system", "source")


@pytest.fixture
def clock() -> ManualClock:  # overrides the suite's fixed clock: signatures must be near real time
    return ManualClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def sandbox() -> Iterator[str]:
    with live.serve(create_sandbox(result_delay=0)) as url:
        yield url


@pytest.fixture
def clients(sandbox: str, clock: ManualClock) -> Iterator[dict[str, TargetClient]]:
    settings = Settings()
    point_at_sandbox(settings, sandbox)
    built = build_clients(settings, clock)
    yield built
    for client in built.values():
        client.close()


@pytest.fixture
def engine(store: Store, clients: dict[str, TargetClient], clock: ManualClock) -> DeliveryEngine:
    return DeliveryEngine(
        store,
        clients,
        clock,
        owner="worker-a",
        policies={t: RetryPolicy(max_attempts=3, jitter_seconds=0) for t in clients},
    )


def post(store: Store, clock: ManualClock, data: dict[str, Any], kind: Kind = Kind.LICENCE) -> int:
    canonical = validate(kind, data, today=dt.date(2026, 11, 25))
    assert isinstance(canonical, Canonical)
    [stored] = store.ingest(
        source_system="approval-system", kind=kind, items=[Incoming(canonical, data)], actor=SOURCE, now=clock.now()
    )
    return stored.record_id


def states(store: Store, **where: Any) -> dict[tuple[str, int, str], str]:
    d = tables.delivery
    query = sa.select(d.c.target, d.c.version, d.c.operation, d.c.state)
    for name, value in where.items():
        query = query.where(d.c[name] == value)
    return {(r.target, r.version, r.operation): r.state for r in store.db.read(lambda c: c.execute(query).all())}


def stats(sandbox: str, target: str) -> dict[str, int]:
    return httpx.get(f"{sandbox}/_admin/{target}/stats").json()


def drain(engine: DeliveryEngine, clock: ManualClock) -> None:
    """Push everything due, then (results are due ``poll_after`` later) ask for the business results."""
    for target in engine.clients:
        while engine.push_once(target):
            pass
    clock.advance(engine.poll_after)
    for target in engine.clients:
        engine.poll_once(target)


def test_records_are_published_on_every_target(
    store: Store, engine: DeliveryEngine, clock: ManualClock, sandbox: str
) -> None:
    for i in range(3):
        post(store, clock, licence(f"L{i}"))
    post(store, clock, commitment("C1"), Kind.COMMITMENT)
    drain(engine, clock)
    assert set(states(store).values()) == {"published"}
    for target, expected in {"national": 4, "provincial": 4, "municipal": 4, "portal": 3}.items():
        found = stats(sandbox, target)
        assert (found["unique_keys"], found["public"], found["duplicate_deliveries"]) == (expected, expected, 0)
    view = store.record_view(Kind.LICENCE, "L0", None)
    national = next(d for d in view["deliveries"] if d["target"] == "national")
    assert [a["outcome"] for a in national["attempts"]] == ["received", "accepted"]
    assert national["published_at"] is not None


def test_a_newer_version_waits_for_the_one_in_flight(
    store: Store, engine: DeliveryEngine, clock: ManualClock, sandbox: str
) -> None:
    post(store, clock, licence("O1"))
    [first] = store.lease_due(
        target="municipal", owner="w", limit=10, now=clock.now(), lease_for=dt.timedelta(seconds=60)
    )
    post(store, clock, licence("O1", content="第二版"))
    assert (
        store.lease_due(target="municipal", owner="w", limit=10, now=clock.now(), lease_for=dt.timedelta(seconds=60))
        == []
    )  # v2 is blocked while v1 is in flight
    clock.advance(dt.timedelta(seconds=61))
    assert engine.reap_once() == 1  # the worker holding v1 is gone; v1 is due again, with its key
    drain(engine, clock)
    found = states(store, target="municipal")
    assert found == {("municipal", 1, "publish"): "published", ("municipal", 2, "publish"): "published"}
    holdings = httpx.get(
        f"{sandbox}/municipal/api/records",
        headers=engine.clients["municipal"]
        .auth.apply(  # type: ignore[attr-defined]
            engine.clients["municipal"].adapter.holdings_exchange(Kind.LICENCE, None, now=clock.now()).request,
            clock.now(),
        )
        .headers,
    ).json()
    [held] = [h for h in holdings["items"] if h["record_id"] == platform_record_id(first.record_id)]
    assert held["key"].endswith("-v2-p-municipal") and held["fields"]["XK_NR"] == "第二版"


def test_a_withdrawal_is_sent_after_the_publish_it_follows(
    store: Store, engine: DeliveryEngine, clock: ManualClock, sandbox: str
) -> None:
    post(store, clock, licence("W1"))
    store.lease_due(target="national", owner="w", limit=10, now=clock.now(), lease_for=dt.timedelta(seconds=60))
    store.withdraw(
        source_system="approval-system",
        kind=Kind.LICENCE,
        source_id="W1",
        reason=WithdrawReason.CREDIT_REPAIR,
        note=None,
        actor=SOURCE,
        now=clock.now(),
    )
    assert states(store, target="national")[("national", 1, "withdraw")] == "pending"
    assert states(store, target="portal") == {
        ("portal", 1, "publish"): "superseded",
        ("portal", 1, "withdraw"): "cancelled",
    }
    clock.advance(dt.timedelta(seconds=61))
    engine.reap_once()
    drain(engine, clock)
    drain(engine, clock)  # the withdrawal becomes leasable once the publish is settled
    assert states(store, target="national") == {
        ("national", 1, "publish"): "published",
        ("national", 1, "withdraw"): "published",
    }
    assert stats(sandbox, "national")["withdrawn"] == 1


def test_a_stale_worker_cannot_settle_a_lease_it_lost(store: Store, engine: DeliveryEngine, clock: ManualClock) -> None:
    post(store, clock, licence("S1"))
    lease = dt.timedelta(seconds=30)
    [mine] = store.lease_due(target="portal", owner="worker-a", limit=5, now=clock.now(), lease_for=lease)
    clock.advance(dt.timedelta(seconds=31))
    store.reap(now=clock.now())
    [theirs] = store.lease_due(target="portal", owner="worker-b", limit=5, now=clock.now(), lease_for=lease)
    assert (theirs.id, theirs.key, theirs.attempts) == (mine.id, mine.key, 2)
    from outbox.lifecycle import AttemptResult, Result, settle

    result = AttemptResult(mine.key, Result.ACCEPTED, receipt="late")
    decision = settle(
        result,
        attempts=1,
        created_at=mine.created_at,
        now=clock.now(),
        policy=RetryPolicy(),
        poll_after=dt.timedelta(seconds=2),
    )
    assert store.settle(owner="worker-a", decided=[(mine, decision, result)], now=clock.now(), duration_ms=1) == 0
    assert states(store, target="portal")[("portal", 1, "publish")] == "in_flight"


def test_retryable_failures_back_off_then_give_up(
    store: Store, engine: DeliveryEngine, clock: ManualClock, sandbox: str
) -> None:
    post(store, clock, licence("R1"))
    httpx.put(f"{sandbox}/_admin/municipal/faults", json={"error_rate": 1.0}).raise_for_status()
    assert len(engine.push_once("municipal")) == 1
    d = tables.delivery
    row = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == "municipal")).one())
    assert row.state == "retry_wait" and row.last_code == "500" and row.next_attempt_at > clock.now()
    assert engine.push_once("municipal") == []  # not due yet: nothing is sent early
    for _ in range(2):
        clock.advance(dt.timedelta(minutes=20))
        engine.push_once("municipal")
    row = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == "municipal")).one())
    assert row.state == "dead" and row.attempts == 3 and row.last_message.startswith("gave up after 3 attempts")


def test_a_permanent_rejection_is_dead_with_the_platform_message(
    store: Store, engine: DeliveryEngine, clock: ManualClock, sandbox: str
) -> None:
    httpx.put(
        f"{sandbox}/_admin/municipal/faults",
        json={
            "reject_rule": {
                "field": "XK_XDR_MC",
                "equals": "怀化市鹤城建筑工程有限公司",
                "code": "2004",
                "message": "相对人名称与工商登记不一致",
            }
        },
    ).raise_for_status()
    post(store, clock, licence("P1"))
    engine.push_once("municipal")
    d = tables.delivery
    row = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == "municipal")).one())
    assert (row.state, row.last_code, row.last_message) == ("dead", "2004", "相对人名称与工商登记不一致")
    assert row.attempts == 1


def test_a_stopping_worker_hands_back_results_it_never_asked_for(
    store: Store, engine: DeliveryEngine, clients: dict[str, TargetClient], clock: ManualClock, sandbox: str
) -> None:
    post(store, clock, licence("H1"))
    assert engine.push_once("national")  # received: its business result is asked for later
    clock.advance(engine.poll_after)
    national = clients["national"]
    national.pace = Pace(0.001)
    national.pace.reserve()  # the turn open now is taken: the poll's turn is 1,000 s away
    asked = stats(sandbox, "national")["requests"]
    national.halt()  # the worker is stopping
    assert engine.poll_once("national") == 0
    d = tables.delivery
    row = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == "national")).one())
    # still awaiting its result, for the next poller, with no attempt spent and no failure recorded
    assert (row.state, row.attempts, row.lease_owner, row.last_code) == ("awaiting_result", 1, None, None)
    assert stats(sandbox, "national")["requests"] == asked


def test_items_never_sent_go_back_due_with_no_attempt_spent(
    store: Store, engine: DeliveryEngine, clients: dict[str, TargetClient], clock: ManualClock, sandbox: str
) -> None:
    for i in range(3):
        post(store, clock, licence(f"G{i}"))
    portal = clients["portal"]
    portal.pace = Pace(0.001)
    portal.pace.reserve()  # the next turn is 1,000 s away
    portal.halt()  # the worker is stopping: the batch's requests give up waiting, unsent
    assert engine.push_once("portal") == []  # nothing sent, nothing to report
    d, a = tables.delivery, tables.attempt
    rows = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == "portal")).all())
    assert {(r.state, r.attempts, r.lease_owner, r.last_code) for r in rows} == {("pending", 0, None, None)}
    tried = store.db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(a)).scalar_one())
    assert tried == 0 and stats(sandbox, "portal")["requests"] == 0
    lease = dt.timedelta(seconds=60)
    assert len(store.lease_due(target="portal", owner="w", limit=10, now=clock.now(), lease_for=lease)) == 3

    # one tried before (its worker died) goes back to retry_wait with that try, its code and its place kept
    [first] = store.lease_due(target="municipal", owner="w", limit=1, now=clock.now(), lease_for=lease)
    clock.advance(lease + dt.timedelta(seconds=1))
    reaped_at = clock.now()
    assert store.reap(now=reaped_at) == 4  # that one, and the three portal ones leased above
    leased = store.lease_due(target="municipal", owner="w", limit=3, now=clock.now(), lease_for=lease)
    [again] = [x for x in leased if x.id == first.id]
    assert again.attempts == 2
    clock.advance(dt.timedelta(seconds=5))
    assert store.give_back(owner="other", ids=[again.id], now=clock.now()) == 0  # only its holder gives it back
    assert store.give_back(owner="w", ids=[again.id], now=clock.now()) == 1
    row = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.id == again.id)).one())
    assert (row.state, row.attempts, row.lease_owner, row.last_code) == ("retry_wait", 1, None, "lease_expired")
    assert row.next_attempt_at == reaped_at


def test_a_stalled_batch_spends_attempts_only_on_what_it_sent(store: Store, clock: ManualClock, sandbox: str) -> None:
    settings = Settings()
    point_at_sandbox(settings, sandbox)
    settings.targets.portal.exchange_deadline_seconds = 0.5
    portal = build_clients(settings, clock)["portal"]
    engine = DeliveryEngine(store, {"portal": portal}, clock, owner="worker-a", policies={"portal": RetryPolicy()})
    httpx.put(f"{sandbox}/_admin/portal/faults", json={"timeout_rate": 1, "hang_seconds": 2}).raise_for_status()
    for i in range(8):
        post(store, clock, licence(f"S{i}"))
    try:
        codes = [r.code for r in engine.push_once("portal")]  # four at a time time out; the rest is not sent
    finally:
        portal.close()
    assert set(codes) == {"timeout"} and 1 <= len(codes) <= 4
    d, a = tables.delivery, tables.attempt
    rows = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == "portal")).all())
    timed_out = [r for r in rows if r.state == "retry_wait"]
    assert {(r.attempts, r.last_code) for r in timed_out} == {(1, "timeout")} and len(timed_out) == len(codes)
    assert {(r.state, r.attempts, r.lease_owner) for r in rows if r not in timed_out} == {("pending", 0, None)}
    tried = store.db.read(lambda c: c.execute(sa.select(a.c.delivery_id)).scalars().all())
    assert sorted(tried) == sorted(r.id for r in timed_out)


def test_a_halted_client_is_not_leased_for(
    store: Store, clients: dict[str, TargetClient], clock: ManualClock, sandbox: str
) -> None:
    settings = Settings()
    point_at_sandbox(settings, sandbox)
    post(store, clock, licence("W1"))
    worker = Worker(settings, store, clients, clock)  # not started: its drain is called here, once
    clients["portal"].halt()  # what a stopping process does (the grace period's cancel too)
    worker.drain("portal")
    d = tables.delivery
    row = store.db.read(lambda c: c.execute(sa.select(d).where(d.c.target == "portal")).one())
    assert (row.state, row.attempts) == ("pending", 0)
