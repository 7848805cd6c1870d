"""The delivery state machine as a pure function of (attempt outcome, retry policy, time).

    pending ──lease──▶ in_flight ──accepted──────────▶ published
       ▲                  │ ├──received (two-stage)──▶ awaiting_result ──accepted──▶ published
       │                  │ ├──rejected──────────────▶ dead            └─rejected──▶ dead
       │                  │ └──retryable──▶ retry_wait ──(next_attempt_at)──▶ leased again
       │                  └──lease expired (worker died)──▶ retry_wait, due at once, same key
    superseded / cancelled: decided at ingest, withdrawal or by an operator, never by an attempt

Retry timing is tenacity's own strategies (exponential backoff with jitter, a cap, stop after N attempts or an
age), evaluated on a synthetic ``RetryCallState``: the next attempt time is *stored*, never slept on. A platform's
Retry-After wins over the backoff when it asks for longer.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, stop_after_attempt, stop_after_delay, wait_exponential, wait_random

from outbox.states import DeliveryState


@dataclass(frozen=True)
class RetryPolicy:
    """Per target: how long to wait between attempts and when to give up (configuration, not code)."""

    max_attempts: int = 12
    max_age: dt.timedelta = dt.timedelta(days=3)
    initial_seconds: float = 2.0
    max_wait_seconds: float = 900.0
    jitter_seconds: float = 1.0

    def _state(self, attempts: int, age: dt.timedelta) -> RetryCallState:
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempts
        state.start_time = 0.0
        state.outcome_timestamp = age.total_seconds()
        return state

    def gives_up(self, attempts: int, age: dt.timedelta) -> bool:
        stop = stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_age.total_seconds())
        return bool(stop(self._state(attempts, age)))

    def wait_seconds(self, attempts: int, retry_after: float | None = None) -> float:
        wait: Any = wait_exponential(multiplier=self.initial_seconds, max=self.max_wait_seconds)
        if self.jitter_seconds:
            wait = wait + wait_random(0, self.jitter_seconds)
        backoff = float(wait(self._state(attempts, dt.timedelta())))
        return max(backoff, retry_after or 0.0)


class Result(enum.StrEnum):
    ACCEPTED = "accepted"  # business acceptance: published
    RECEIVED = "received"  # transport receipt of a two-stage platform: the business result comes later
    REJECTED = "rejected"  # the platform refused the content: permanent
    RETRYABLE = "retryable"  # timeout, 5xx, 429, malformed reply: try again later, same key


@dataclass(frozen=True)
class AttemptResult:
    """One item's fate in one attempt, in the outbox's own words (the gateway translates adapter outcomes)."""

    key: str
    result: Result
    receipt: str | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    request_excerpt: str | None = None  # what was sent and what came back (secrets removed, IDs masked)
    reply_excerpt: str | None = None


@dataclass(frozen=True)
class Settlement:
    """What one outcome does to a delivery row."""

    state: DeliveryState
    next_attempt_at: dt.datetime | None = None
    published_at: dt.datetime | None = None
    receipt_id: str | None = None
    code: str | None = None
    message: str | None = None


def settle(
    outcome: AttemptResult,
    *,
    attempts: int,
    created_at: dt.datetime,
    now: dt.datetime,
    policy: RetryPolicy,
    poll_after: dt.timedelta,
) -> Settlement:
    """The new state of a delivery after ``outcome``."""
    if outcome.result is Result.ACCEPTED:
        return Settlement(DeliveryState.PUBLISHED, published_at=now, receipt_id=outcome.receipt)
    if outcome.result is Result.RECEIVED:
        return Settlement(DeliveryState.AWAITING_RESULT, next_attempt_at=now + poll_after, receipt_id=outcome.receipt)
    if outcome.result is Result.REJECTED:
        return Settlement(DeliveryState.DEAD, code=outcome.code, message=outcome.message)
    if policy.gives_up(attempts, now - created_at):
        return Settlement(
            DeliveryState.DEAD, code=outcome.code, message=f"gave up after {attempts} attempts: {outcome.message}"
        )
    wait = policy.wait_seconds(attempts, outcome.retry_after)
    return Settlement(
        DeliveryState.RETRY_WAIT,
        next_attempt_at=now + dt.timedelta(seconds=wait),
        code=outcome.code,
        message=outcome.message,
    )
