"""The delivery state machine and the retry policy, as pure functions."""

from __future__ import annotations

import datetime as dt

import pytest

from outbox.lifecycle import AttemptResult, Result, RetryPolicy, settle
from outbox.states import DeliveryState

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
POLL = dt.timedelta(seconds=2)


def decide(result: AttemptResult, attempts: int = 1, age: dt.timedelta = dt.timedelta(), **policy: float) -> object:
    return settle(
        result,
        attempts=attempts,
        created_at=NOW - age,
        now=NOW,
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        poll_after=POLL,
    )


def test_each_outcome_moves_the_delivery() -> None:
    accepted = decide(AttemptResult("k", Result.ACCEPTED, receipt="r"))
    assert (accepted.state, accepted.published_at, accepted.receipt_id) == (DeliveryState.PUBLISHED, NOW, "r")
    received = decide(AttemptResult("k", Result.RECEIVED, receipt="r"))
    assert (received.state, received.next_attempt_at) == (DeliveryState.AWAITING_RESULT, NOW + POLL)
    rejected = decide(AttemptResult("k", Result.REJECTED, code="2002", message="USCC invalid"))
    assert (rejected.state, rejected.code, rejected.message) == (DeliveryState.DEAD, "2002", "USCC invalid")
    retry = decide(AttemptResult("k", Result.RETRYABLE, code="503", message="down"), jitter_seconds=0)
    assert (retry.state, retry.next_attempt_at) == (DeliveryState.RETRY_WAIT, NOW + dt.timedelta(seconds=2))


def test_backoff_grows_exponentially_to_a_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(initial_seconds=2, max_wait_seconds=60, jitter_seconds=0)
    assert [policy.wait_seconds(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    jittered = RetryPolicy(initial_seconds=2, max_wait_seconds=60, jitter_seconds=1)
    waits = [jittered.wait_seconds(3) for _ in range(200)]
    assert all(8 <= w <= 9 for w in waits) and len(set(waits)) > 1


def test_retry_after_wins_when_it_asks_for_longer() -> None:
    policy = RetryPolicy(jitter_seconds=0)
    assert policy.wait_seconds(1, retry_after=30) == 30
    assert policy.wait_seconds(5, retry_after=1) == 32


@pytest.mark.parametrize(
    ("attempts", "age", "dead"),
    [(2, dt.timedelta(hours=1), False), (3, dt.timedelta(), True), (1, dt.timedelta(days=4), True)],
)
def test_giving_up_after_attempts_or_age(attempts: int, age: dt.timedelta, dead: bool) -> None:
    outcome = decide(
        AttemptResult("k", Result.RETRYABLE, code="timeout", message="slow"), attempts, age, max_attempts=3
    )
    assert (outcome.state is DeliveryState.DEAD) == dead  # type: ignore[attr-defined]
    if dead:
        assert "gave up" in outcome.message  # type: ignore[attr-defined]
