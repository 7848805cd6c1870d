"""The delivery engine: lease due deliveries per target, send them through the target's client, settle the
outcomes; ask two-stage platforms for business results; make expired leases due again.

Each step is a short transaction around one network exchange, so a database lock is never held while a
platform thinks. ``push_once`` / ``poll_once`` / ``reap_once`` are what the scheduler (or a test, with an
injected clock) calls; they never sleep.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from adapters import base
from adapters.client import TargetClient
from adapters.excerpts import Excerpt
from adapters.transport import NOT_SENT_CODE
from gateway import logs
from gateway.clock import Clock
from outbox.errors import StoreError
from outbox.leases import Leased
from outbox.lifecycle import AttemptResult, Result, RetryPolicy, settle
from outbox.states import DeliveryState
from outbox.store import Store
from schemas.enums import Kind

log = logging.getLogger("gateway.delivery")

PLATFORM_RECORD_ID = "hhzjj-{id}"  # 怀化住建局: stable across versions, within PROTOCOLS.md's item-key charset


def platform_record_id(record_id: int) -> str:
    return PLATFORM_RECORD_ID.format(id=record_id)


def to_item(leased: Leased) -> base.Item:
    operation = base.Operation.UPSERT if leased.operation == "publish" else base.Operation.WITHDRAW
    return base.Item(
        leased.key,
        platform_record_id(leased.record_id),
        Kind.from_code(leased.kind),
        operation,
        leased.version,
        leased.content,
        leased.withdraw_reason if operation is base.Operation.WITHDRAW else None,
    )


def _unsent(outcome: AttemptResult | None) -> bool:
    return outcome is not None and outcome.result is Result.RETRYABLE and outcome.code == NOT_SENT_CODE


def _never_asked(outcomes: list[base.Outcome]) -> bool:
    """A results poll that never went out (the process is stopping while it waited for its turn under the rate
    limit): the platform was not asked, so its answer is still to come, not a failure of the delivery."""
    return bool(outcomes) and all(isinstance(o, base.Retryable) and o.code == NOT_SENT_CODE for o in outcomes)


def to_result(outcome: base.Outcome, excerpt: Excerpt | None = None) -> AttemptResult:
    """The outbox's words for an adapter's outcome, with the excerpt of its exchange (built in one go: a
    ``dataclasses.replace`` per item cost more than the rest of this)."""
    sent, heard = (excerpt.request, excerpt.reply) if excerpt is not None else (None, None)
    match outcome:
        case base.Accepted():
            return AttemptResult(
                outcome.key, Result.ACCEPTED, receipt=outcome.receipt, request_excerpt=sent, reply_excerpt=heard
            )
        case base.Received():
            return AttemptResult(
                outcome.key, Result.RECEIVED, receipt=outcome.receipt, request_excerpt=sent, reply_excerpt=heard
            )
        case base.Rejected():
            return AttemptResult(
                outcome.key,
                Result.REJECTED,
                code=outcome.code,
                message=outcome.message,
                request_excerpt=sent,
                reply_excerpt=heard,
            )
        case base.Retryable():
            return AttemptResult(
                outcome.key,
                Result.RETRYABLE,
                code=outcome.code,
                message=outcome.message,
                retry_after=outcome.retry_after,
                request_excerpt=sent,
                reply_excerpt=heard,
            )
    raise TypeError(f"not an outcome: {outcome!r}")


@dataclass
class DeliveryEngine:
    store: Store
    clients: Mapping[str, TargetClient]
    clock: Clock
    owner: str
    policies: Mapping[str, RetryPolicy] = field(default_factory=dict)
    lease_for: dt.timedelta = dt.timedelta(seconds=60)
    poll_after: dt.timedelta = dt.timedelta(seconds=2)
    urgent_by: Callable[[], dt.date | None] = lambda: None  # deadlines on or before this day are leased first
    # told what each exchange showed before it is settled, so whoever sees the deliveries settled sees the
    # target's health (the shared breaker) too
    observe: Callable[[str, list[AttemptResult]], None] | None = None

    def policy(self, target: str) -> RetryPolicy:
        return self.policies.get(target, RetryPolicy())

    def push_once(self, target: str, limit: int | None = None) -> list[AttemptResult]:
        """Lease one batch of due deliveries for ``target``, send it, settle it; what each item's attempt gave."""
        client = self.clients[target]
        leased = self.store.lease_due(
            target=target,
            owner=self.owner,
            limit=limit or client.adapter.max_items,
            now=self.clock.now(),
            lease_for=self.lease_for,
            urgent_by=self.urgent_by(),
        )
        if not leased:
            return []
        started = time.perf_counter()
        with self._heartbeat([x.id for x in leased]):
            found, excerpts = client.deliver_traced([to_item(x) for x in leased])
            outcomes = {o.key: to_result(o, excerpts.get(o.key)) for o in found}
        if self.observe is not None:
            self.observe(target, list(outcomes.values()))
        unsent = {x.key for x in leased if _unsent(outcomes.get(x.key))}
        if not unsent:
            self._settle(target, leased, outcomes, started)
            return list(outcomes.values())
        # what was sent is settled first (its outcome must not wait on anything else); what never went out is due
        # again, with no attempt spent on it, and is not reported: a push that sent nothing returns nothing
        sent = [x for x in leased if x.key not in unsent]
        if sent:
            self._settle(target, sent, outcomes, started)
        self.store.give_back(owner=self.owner, ids=[x.id for x in leased if x.key in unsent], now=self.clock.now())
        return [outcomes[x.key] for x in sent if x.key in outcomes]

    @contextlib.contextmanager
    def _heartbeat(self, ids: list[int]) -> Iterator[None]:
        """Extend the batch's leases every third of the lease time until it is sent; a dead worker stops beating."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.lease_for.total_seconds() / 3):
                with contextlib.suppress(StoreError):  # a missed beat only shortens the lease
                    self.store.extend_leases(owner=self.owner, ids=ids, until=self.clock.now() + self.lease_for)

        thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def poll_once(self, target: str) -> int:
        """Ask a two-stage platform for the business results that are due; the number settled."""
        client = self.clients[target]
        if not client.two_stage:
            return 0
        leased = self.store.lease_awaiting(
            target=target,
            owner=self.owner,
            limit=client.adapter.max_items,
            now=self.clock.now(),
            lease_for=self.lease_for,
        )
        if not leased:
            return 0
        by_receipt: dict[str, list[Leased]] = defaultdict(list)
        for row in leased:
            by_receipt[row.receipt_id or ""].append(row)
        settled = 0
        with self._heartbeat([x.id for x in leased]):  # receipts asked one by one, each maybe paced: keep them all
            for receipt, rows in by_receipt.items():
                started = time.perf_counter()
                results, excerpt = client.results_traced(receipt, [r.key for r in rows])
                if results is None or _never_asked(results):  # still processing, or we are stopping: ask later
                    now = self.clock.now()
                    self.store.still_processing(
                        owner=self.owner, ids=[r.id for r in rows], next_at=now + self.poll_after, now=now
                    )
                    continue
                outcomes = {o.key: to_result(o, excerpt) for o in results}
                settled += self._settle(target, rows, outcomes, started)
        return settled

    def reap_once(self) -> int:
        return self.store.reap(now=self.clock.now())

    def _settle(self, target: str, leased: list[Leased], outcomes: dict[str, AttemptResult], started: float) -> int:
        now = self.clock.now()
        policy = self.policy(target)
        decided = []
        for row in leased:
            outcome = outcomes.get(row.key) or AttemptResult(
                row.key, Result.RETRYABLE, code="no_outcome", message="the adapter returned no outcome for it"
            )
            decided.append(
                (
                    row,
                    settle(
                        outcome,
                        attempts=row.attempts,
                        created_at=row.created_at,
                        now=now,
                        policy=policy,
                        poll_after=self.poll_after,
                    ),
                    outcome,
                )
            )
        duration_ms = int((time.perf_counter() - started) * 1000)
        settled = self.store.settle(owner=self.owner, decided=decided, now=now, duration_ms=duration_ms)
        for row, settlement, _ in decided:
            if settlement.state is DeliveryState.DEAD:
                logs.event(
                    log,
                    logging.WARNING,
                    "delivery_dead",
                    delivery_id=row.id,
                    target=target,
                    kind=row.kind,
                    record_id=row.record_id,
                    version=row.version,
                    operation=row.operation,
                    attempts=row.attempts,
                    code=settlement.code,
                    message=settlement.message,
                )
        return settled
