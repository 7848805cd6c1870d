"""Per-target circuit breaker and rate limit: one target's outage or throttling never slows the others.

The breaker opens after ``failures`` consecutive exchanges in which the target did not answer usefully (timeouts,
refused connections, 5xx, unreadable replies); while open nothing is leased for that target, so its backlog waits
in the database instead of burning attempts. After ``open_for`` one probe batch of a single item goes out
(half-open): success closes the breaker, failure opens it again. A breaker open longer than ``alert_after`` is
the operator-visible alert. A 429 is not a failure: the target is up and asked us to wait, so the gate holds
until its Retry-After. The rate limit is a token bucket of requests per second. All time comes from the clock.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.clock import Clock
from outbox.lifecycle import AttemptResult, Result

# Codes that mean "the platform answered, it just said no to these items" are not failures of the target.
_NOT_DOWN = {"429", "4290", "missing_result", "no_outcome"}


@dataclass
class Gate:
    clock: Clock
    failures: int = 5
    open_for: dt.timedelta = dt.timedelta(seconds=30)
    alert_after: dt.timedelta = dt.timedelta(minutes=5)
    rate_per_second: float | None = None
    state: str = "closed"  # closed | open | half_open
    consecutive_failures: int = 0
    opened_at: dt.datetime | None = None
    down_since: dt.datetime | None = None
    hold_until: dt.datetime | None = None
    _tokens: float = 0.0
    _refilled: dt.datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def batch_limit(self, normal: int) -> int:
        """How many items the next exchange may carry: one while probing a target that was down."""
        return 1 if self.state == "half_open" else normal

    def may_send(self) -> bool:
        now = self.clock.now()
        with self._lock:
            if self.hold_until is not None and now < self.hold_until:
                return False
            if self.state == "open":
                if self.opened_at is not None and now - self.opened_at < self.open_for:
                    return False
                self.state = "half_open"
            return self._take_token(now)

    def _take_token(self, now: dt.datetime) -> bool:
        if self.rate_per_second is None:
            return True
        if self._refilled is None:
            self._refilled, self._tokens = now, self.rate_per_second
        elapsed = (now - self._refilled).total_seconds()
        self._tokens = min(self.rate_per_second, self._tokens + elapsed * self.rate_per_second)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def record(self, results: Sequence[AttemptResult]) -> None:
        """What one exchange with the target showed about its health."""
        if not results:
            return
        now = self.clock.now()
        waits = [r.retry_after for r in results if r.retry_after]
        with self._lock:
            if waits:
                self.hold_until = now + dt.timedelta(seconds=max(waits))
            answered = any(r.result is not Result.RETRYABLE or (r.code or "") in _NOT_DOWN for r in results)
            if answered:
                self.state, self.consecutive_failures, self.opened_at, self.down_since = "closed", 0, None, None
                return
            self.consecutive_failures += 1
            if self.state == "half_open" or self.consecutive_failures >= self.failures:
                self.state, self.opened_at = "open", now
                self.down_since = self.down_since or now

    def alerting(self) -> bool:
        return self.down_since is not None and self.clock.now() - self.down_since >= self.alert_after

    def status(self) -> dict[str, object]:
        return {
            "breaker": self.state,
            "consecutive_failures": self.consecutive_failures,
            "down_since": self.down_since.isoformat() if self.down_since else None,
            "alert": self.alerting(),
            "held_until": self.hold_until.isoformat() if self.hold_until else None,
        }
