"""Property tests of the delivery state machine (issue 8): for any sequence of events and attempt outcomes, a
delivery is only ever in a state the machine allows, and a superseded delivery is never resurrected.

The events are driven through the real pieces: ``outbox.lifecycle.settle`` decides every attempt's effect, and
which rows each store operation may touch comes from the same state sets the store's SQL uses (``DUE`` for
leasing, ``_LEASED`` for settling, ``REPLACEABLE`` for superseding). What is checked on top is what the SQL guards
and ``settle`` together must guarantee.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from outbox.leases import _LEASED
from outbox.lifecycle import AttemptResult, Result, RetryPolicy, settle
from outbox.states import DUE, MAY_HOLD, REPLACEABLE, DeliveryState

START = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
POLL_AFTER = dt.timedelta(seconds=2)
LEASED = {DeliveryState(s) for s in _LEASED}
SETTLED_BY_AN_ATTEMPT = {
    DeliveryState.PUBLISHED,
    DeliveryState.AWAITING_RESULT,
    DeliveryState.DEAD,
    DeliveryState.RETRY_WAIT,
}
# Where each state may go, and by what (the diagram in outbox/lifecycle.py).
ALLOWED = {
    DeliveryState.PENDING: {DeliveryState.IN_FLIGHT, DeliveryState.SUPERSEDED},
    DeliveryState.RETRY_WAIT: {DeliveryState.IN_FLIGHT, DeliveryState.SUPERSEDED},
    DeliveryState.IN_FLIGHT: SETTLED_BY_AN_ATTEMPT,
    DeliveryState.AWAITING_RESULT: SETTLED_BY_AN_ATTEMPT,
    DeliveryState.DEAD: {DeliveryState.PENDING, DeliveryState.SUPERSEDED},  # an operator's requeue; a new version
    DeliveryState.PUBLISHED: set(),
    DeliveryState.SUPERSEDED: set(),
    DeliveryState.CANCELLED: set(),
}


@dataclass(frozen=True)
class Row:
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    published_at: dt.datetime | None = None
    receipt: str | None = None


outcomes = st.builds(
    AttemptResult,
    key=st.just("cg-1-v1-p-national"),
    result=st.sampled_from(Result),
    receipt=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
    code=st.one_of(st.none(), st.sampled_from(["timeout", "429", "503", "cancelled", "2004"])),
    message=st.just("m"),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=7 * 86400, allow_nan=False)),
)
events = st.one_of(
    st.tuples(st.just("time"), st.floats(min_value=0, max_value=4 * 86400, allow_nan=False)),
    st.tuples(st.just("lease"), st.none()),
    st.tuples(st.just("outcome"), outcomes),
    st.tuples(st.just("reap"), st.none()),
    st.tuples(st.just("supersede"), st.none()),
    st.tuples(st.just("requeue"), st.none()),
)
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(min_value=1, max_value=15),
    max_age=st.timedeltas(min_value=dt.timedelta(minutes=1), max_value=dt.timedelta(days=5)),
    initial_seconds=st.floats(min_value=0.1, max_value=60),
    max_wait_seconds=st.floats(min_value=1, max_value=3600),
    jitter_seconds=st.floats(min_value=0, max_value=2),
)


def step(row: Row, event: tuple[str, Any], now: dt.datetime, policy: RetryPolicy) -> Row:
    """What the store does to one row on ``event``, guarded as its SQL is; an unguarded event changes nothing."""
    name, value = event
    if name == "lease" and row.state in DUE and (row.next_attempt_at is None or row.next_attempt_at <= now):
        return replace(row, state=DeliveryState.IN_FLIGHT, attempts=row.attempts + 1)
    if name == "outcome" and row.state in LEASED:
        result: AttemptResult = value
        if row.state is DeliveryState.AWAITING_RESULT and result.result is Result.RECEIVED:
            return row  # a business-results poll answers accepted, rejected or not yet: never a second receipt
        settled = settle(result, attempts=row.attempts, created_at=START, now=now, policy=policy, poll_after=POLL_AFTER)
        check_settlement(result, settled, row, now, policy)
        return Row(
            settled.state,
            row.attempts,
            settled.next_attempt_at,
            settled.published_at or row.published_at,
            settled.receipt_id or row.receipt,
        )
    if name == "reap" and row.state is DeliveryState.IN_FLIGHT:
        return replace(row, state=DeliveryState.RETRY_WAIT, next_attempt_at=now)
    if name == "supersede" and row.state in REPLACEABLE:
        return replace(row, state=DeliveryState.SUPERSEDED)
    if name == "requeue" and row.state is DeliveryState.DEAD:
        return replace(row, state=DeliveryState.PENDING, next_attempt_at=None)
    return row


def check_settlement(result: AttemptResult, settled: Any, row: Row, now: dt.datetime, policy: RetryPolicy) -> None:
    assert settled.state in SETTLED_BY_AN_ATTEMPT, (result, settled)
    if settled.state is DeliveryState.PUBLISHED:
        assert result.result is Result.ACCEPTED and settled.published_at == now
    if settled.state is DeliveryState.AWAITING_RESULT:
        assert result.result is Result.RECEIVED and settled.next_attempt_at == now + POLL_AFTER
    if settled.state is DeliveryState.RETRY_WAIT:
        assert result.result is Result.RETRYABLE
        assert settled.next_attempt_at is not None
        wait = (settled.next_attempt_at - now).total_seconds()
        longest = max(policy.max_wait_seconds + policy.jitter_seconds, result.retry_after or 0)
        assert (result.retry_after or 0) - 1e-6 <= wait <= longest + 1e-6  # a Retry-After always wins
        assert not policy.gives_up(row.attempts, now - START)
    if settled.state is DeliveryState.DEAD:
        assert result.result is Result.REJECTED or policy.gives_up(row.attempts, now - START)


@settings(max_examples=400, deadline=None)
@given(policy=policies, sequence=st.lists(events, max_size=60))
def test_no_sequence_of_outcomes_reaches_an_impossible_state(policy: RetryPolicy, sequence: list[Any]) -> None:
    row, now = Row(), START
    for event in sequence:
        if event[0] == "time":
            now += dt.timedelta(seconds=event[1])
            continue
        before = row
        row = step(row, event, now, policy)
        assert row.state in DeliveryState
        if row.state is not before.state:
            assert row.state in ALLOWED[before.state], (before, event, row)
        assert row.attempts >= before.attempts  # attempts are history: never taken back
        if row.state is DeliveryState.IN_FLIGHT:
            assert row.attempts >= 1
        if row.state in DUE:
            assert row.state is DeliveryState.PENDING or row.next_attempt_at is not None
        if before.state is DeliveryState.PUBLISHED:
            assert row == before  # published is final for this delivery (a withdrawal is a delivery of its own)


@settings(max_examples=400, deadline=None)
@given(policy=policies, sequence=st.lists(events, max_size=60), at=st.integers(min_value=0, max_value=60))
def test_a_superseded_delivery_is_never_resurrected(policy: RetryPolicy, sequence: list[Any], at: int) -> None:
    sequence.insert(min(at, len(sequence)), ("supersede", None))  # a newer version arrives at some point
    row, now = Row(), START
    superseded = False
    for event in sequence:
        if event[0] == "time":
            now += dt.timedelta(seconds=event[1])
            continue
        row = step(row, event, now, policy)
        superseded = superseded or row.state is DeliveryState.SUPERSEDED
        if superseded:
            assert row.state is DeliveryState.SUPERSEDED, (event, row)


def test_the_store_guards_never_admit_a_superseded_or_cancelled_row() -> None:
    """The sets the SQL uses: nothing leases, settles, supersedes or may-hold a superseded or cancelled row."""
    for closed in (DeliveryState.SUPERSEDED, DeliveryState.CANCELLED):
        assert closed not in DUE and closed not in LEASED and closed not in REPLACEABLE and closed not in MAY_HOLD
    assert DeliveryState.PUBLISHED not in REPLACEABLE  # a published version is withdrawn, never silently replaced
