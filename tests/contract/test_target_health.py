"""The shared breaker in the database (``outbox.health``, ``gateway.gate``), on SQLite and PostgreSQL: two gates
with different owners stand for two processes sharing one database."""

from __future__ import annotations

import datetime as dt
import threading

from gateway.clock import ManualClock
from gateway.gate import Gate, StoreBook
from outbox.ingest import Actor, Incoming
from outbox.lifecycle import AttemptResult, Result
from outbox.store import Store
from schemas.enums import Kind
from schemas.validation import Canonical, validate
from tests.conftest import NOW
from tests.factories import licence

LEASE = dt.timedelta(seconds=60)
DOWN = [AttemptResult("k", Result.RETRYABLE, code="500", message="target answered HTTP 500")]
UP = [AttemptResult("k", Result.ACCEPTED)]


def ingest(store: Store, n: int) -> None:
    items = []
    for i in range(n):
        data = licence(f"TH-{i:03d}")
        canonical = validate(Kind.LICENCE, data, today=NOW.date())
        assert isinstance(canonical, Canonical)
        items.append(Incoming(canonical, data))
    store.ingest(source_system="approval-system", kind=Kind.LICENCE, items=items, actor=Actor("s", "source"), now=NOW)


def gates(store: Store, clock: ManualClock) -> tuple[Gate, Gate]:
    def gate(owner: str) -> Gate:  # fresh=0: each process sees the row as it is now (no cache to wait out)
        return Gate(clock, 2, dt.timedelta(seconds=30), target="municipal", owner=owner, book=StoreBook(store, 0))

    return gate("worker-a"), gate("worker-b")


def lease(store: Store, owner: str, clock: ManualClock, limit: int = 5) -> int:
    leased = store.lease_due(target="municipal", owner=owner, limit=limit, now=clock.now(), lease_for=LEASE)
    return len(leased)


def test_one_breaker_for_two_processes_and_one_prober(store: Store) -> None:
    clock = ManualClock(NOW)
    ingest(store, 10)
    a, b = gates(store, clock)
    a.record(DOWN)
    b.record(DOWN)  # the second failure in a row, whoever saw it: open for both
    assert (a.state, b.state) == ("open", "open")
    assert not a.may_send() and not b.may_send()
    assert lease(store, "worker-a", clock) == 0 and lease(store, "worker-b", clock) == 0  # the lease query refuses
    row = store.target_health()["municipal"]
    assert (row.consecutive_failures, row.last_failure_code, row.opened_at) == (2, "500", NOW)

    clock.advance(dt.timedelta(seconds=31))
    assert a.may_send()  # a takes the probe ...
    assert not b.may_send()  # ... so b may not, until a's claim runs out
    assert a.batch_limit(200) == 1 and b.batch_limit(200) == 200
    assert lease(store, "worker-b", clock) == 0 and lease(store, "worker-a", clock, a.batch_limit(200)) == 1
    a.record(UP)
    assert (a.state, b.state) == ("closed", "closed") and b.may_send()
    assert lease(store, "worker-b", clock) == 5
    row = store.target_health()["municipal"]
    assert (row.breaker, row.consecutive_failures, row.last_success_at) == ("closed", 0, clock.now())


def a_probes(store: Store) -> tuple[ManualClock, Gate, Gate]:
    """Two failures opened the breaker, its open time ran out, and process a took the probe."""
    clock = ManualClock(NOW)
    a, b = gates(store, clock)
    a.record(DOWN)
    a.record(DOWN)
    clock.advance(dt.timedelta(seconds=31))
    assert a.may_send() and not b.may_send()
    return clock, a, b


def test_a_failed_probe_reopens_and_a_dead_prober_loses_its_claim(store: Store) -> None:
    clock, a, b = a_probes(store)
    a.record(DOWN)  # the probe failed: open again, for another open time
    assert b.state == "open" and store.target_health()["municipal"].opened_at == clock.now()
    clock.advance(dt.timedelta(seconds=31))
    assert a.may_send()  # a claims, then dies without a word
    clock.advance(dt.timedelta(seconds=59))
    assert not b.may_send()
    clock.advance(dt.timedelta(seconds=2))  # past a's claim (probe_for: the lease time)
    assert b.may_send() and b.batch_limit(200) == 1


def test_only_one_of_many_claims_the_probe(store: Store) -> None:
    clock = ManualClock(NOW)
    a, _ = gates(store, clock)
    a.record(DOWN)
    a.record(DOWN)
    clock.advance(dt.timedelta(seconds=31))
    won: list[str] = []
    start = threading.Barrier(6)

    def claim(owner: str) -> None:
        start.wait()
        claimed = store.claim_probe(
            target="municipal",
            owner=owner,
            now=clock.now(),
            open_for=dt.timedelta(seconds=30),
            until=clock.now() + LEASE,
        )
        if claimed is not None:
            won.append(owner)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert store.target_health()["municipal"].probe_owner == won[0]


def test_a_throttle_holds_every_process_until_its_retry_after(store: Store) -> None:
    clock = ManualClock(NOW)
    ingest(store, 3)
    a, b = gates(store, clock)
    a.record([AttemptResult("k", Result.RETRYABLE, code="429", message="slow down", retry_after=120)])
    assert a.state == "closed" and not b.may_send()  # up, but asked to wait
    assert lease(store, "worker-b", clock) == 0
    assert b.status()["held_until"] == (NOW + dt.timedelta(seconds=120)).isoformat()
    clock.advance(dt.timedelta(seconds=121))
    assert b.may_send() and lease(store, "worker-b", clock) == 3
    assert b.status()["last_failure"] == {"at": NOW.isoformat(), "code": "429", "message": "slow down"}


def test_successes_are_written_at_most_once_a_second(store: Store) -> None:
    clock = ManualClock(NOW)
    a, _ = gates(store, clock)
    a.record(UP)
    first = store.target_health()["municipal"].updated_at
    clock.advance(dt.timedelta(milliseconds=500))
    a.record(UP)
    assert store.target_health()["municipal"].updated_at == first  # no write for this batch
    clock.advance(dt.timedelta(milliseconds=600))
    a.record(UP)
    assert store.target_health()["municipal"].last_success_at == clock.now()


def test_our_own_stop_says_nothing_about_the_target(store: Store) -> None:
    clock = ManualClock(NOW)
    a, _ = gates(store, clock)
    a.record(DOWN)
    stopped = [
        AttemptResult("k1", Result.RETRYABLE, code="cancelled", message="the gateway stopped"),
        AttemptResult("k2", Result.RETRYABLE, code="not_sent", message="not sent: the gateway began to stop"),
    ]
    a.record(stopped)  # a second failure in a row would open the breaker (failures=2)
    row = store.target_health()["municipal"]
    assert (a.state, row.consecutive_failures, row.last_failure_code) == ("closed", 1, "500")
    a.record([*stopped, *DOWN])  # cut short beside a real failure: the failure counts, under its own code
    row = store.target_health()["municipal"]
    assert (a.state, row.consecutive_failures, row.last_failure_code) == ("open", 2, "500")


def test_a_probe_cut_short_by_our_stop_lets_another_process_probe(store: Store) -> None:
    _, a, b = a_probes(store)
    a.record([AttemptResult("k", Result.RETRYABLE, code="not_sent", message="not sent: the gateway stopped")])
    assert b.may_send()  # a stopped before probing: b need not wait out a's claim
    row = store.target_health()["municipal"]
    assert (row.breaker, row.probe_owner, row.consecutive_failures) == ("half_open", "worker-b", 2)
