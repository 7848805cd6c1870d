"""Per-target circuit breaker: one target's outage or throttling never slows the others.

The breaker opens after ``failures`` consecutive exchanges in which the target did not answer usefully (timeouts,
refused connections, 5xx, unreadable replies); while open nothing is leased for that target, so its backlog waits
in the database instead of burning attempts. After ``open_for`` one probe batch of a single item goes out
(half-open): success closes the breaker, failure opens it again. A breaker open longer than ``alert_after`` is
the operator-visible alert. A 429 is not a failure: the target is up and asked us to wait, so the gate holds
until its Retry-After. All time comes from the clock. (The rate limit counts requests, so it is the client's:
``adapters.pace``.)

The breaker itself lives in a ``HealthBook``: in production the database (``StoreBook``, ``outbox.health``), so
every process that talks to a target shares one breaker, one throttle and one probe; ``MemoryBook`` keeps it in
this process (a gate built without a store, as in unit tests). A ``StoreBook`` reads all targets' rows in one
query at most every ``fresh`` seconds and learns every row it writes, so checking the gate before each batch
costs no round trip; the lease query re-checks the row itself, so a stale cache can never send while open.
Successes are written at most once a second per target and process (the last-success time is that coarse);
failures, throttles and transitions always.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from gateway import logs
from gateway.clock import Clock, monotonic
from gateway.settings import Settings
from outbox.health import Exchange, TargetHealth, after_exchange
from outbox.lifecycle import AttemptResult, Result
from outbox.store import Store

log = logging.getLogger("gateway.gate")

# Codes that mean "the platform answered, it just said no to these items" are not failures of the target.
_NOT_DOWN = {"429", "4290", "missing_result", "no_outcome"}
# Codes of our own stop: the exchange was cut short or never sent because this process is stopping; the target
# did nothing, so they count neither for nor against it.
_OUR_STOP = {"cancelled", "not_sent"}
SUCCESS_WRITE_SECONDS = 1.0  # how stale a shared last-success time may get


class HealthBook(Protocol):
    def get(self, target: str) -> TargetHealth: ...

    def change(
        self, target: str, now: dt.datetime, step: Callable[[TargetHealth], TargetHealth]
    ) -> tuple[TargetHealth, TargetHealth]: ...

    def claim_probe(
        self, target: str, owner: str, now: dt.datetime, open_for: dt.timedelta, until: dt.datetime
    ) -> TargetHealth | None: ...


class MemoryBook:
    """This process's own breakers: for a gate nobody else shares."""

    def __init__(self) -> None:
        self._rows: dict[str, TargetHealth] = {}
        self._lock = threading.Lock()

    def get(self, target: str) -> TargetHealth:
        with self._lock:
            return self._rows.get(target) or TargetHealth(target)

    def change(
        self, target: str, now: dt.datetime, step: Callable[[TargetHealth], TargetHealth]
    ) -> tuple[TargetHealth, TargetHealth]:
        with self._lock:
            before = self._rows.get(target) or TargetHealth(target, updated_at=now)
            self._rows[target] = after = step(before)
            return before, after

    def claim_probe(
        self, target: str, owner: str, now: dt.datetime, open_for: dt.timedelta, until: dt.datetime
    ) -> TargetHealth | None:
        with self._lock:
            h = self._rows.get(target) or TargetHealth(target)
            expired = h.breaker == "open" and h.opened_at is not None and h.opened_at <= now - open_for
            taken_over = h.breaker == "half_open" and (h.probe_until is None or h.probe_until <= now)
            if not (expired or taken_over):
                return None
            self._rows[target] = claimed = replace(
                h, breaker="half_open", probe_owner=owner, probe_until=until, updated_at=now
            )
            return claimed


class StoreBook:
    """The breakers in the database, with a short-lived cache of all targets' rows."""

    def __init__(self, store: Store, fresh: float = 0.5) -> None:
        self.store, self.fresh = store, fresh
        self._rows: dict[str, TargetHealth] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, target: str) -> TargetHealth:
        with self._lock:
            if monotonic() - self._read_at > self.fresh:
                self._rows, self._read_at = self.store.target_health(), monotonic()
            return self._rows.get(target) or TargetHealth(target)

    def _learn(self, row: TargetHealth) -> None:
        with self._lock:
            self._rows[row.target] = row

    def change(
        self, target: str, now: dt.datetime, step: Callable[[TargetHealth], TargetHealth]
    ) -> tuple[TargetHealth, TargetHealth]:
        before, after = self.store.change_health(target=target, now=now, step=step)
        self._learn(after)
        return before, after

    def claim_probe(
        self, target: str, owner: str, now: dt.datetime, open_for: dt.timedelta, until: dt.datetime
    ) -> TargetHealth | None:
        claimed = self.store.claim_probe(target=target, owner=owner, now=now, open_for=open_for, until=until)
        if claimed is not None:
            self._learn(claimed)
        return claimed


def exchange_of(results: Sequence[AttemptResult]) -> Exchange:
    """What one exchange's per-item results say about the target."""
    waits = [r.retry_after for r in results if r.retry_after]
    answered = any(r.result is not Result.RETRYABLE or (r.code or "") in _NOT_DOWN for r in results)
    failed = next((r for r in results if r.result is Result.RETRYABLE), None)
    code, message = (failed.code, failed.message) if failed is not None else (None, None)
    if not answered:
        return Exchange("down", max(waits, default=None), code, message)
    if waits:
        return Exchange("throttled", max(waits), code, message)
    return Exchange("ok")


@dataclass
class Gate:
    clock: Clock
    failures: int = 5
    open_for: dt.timedelta = dt.timedelta(seconds=30)
    alert_after: dt.timedelta = dt.timedelta(minutes=5)
    target: str = "target"
    owner: str = "this-process"
    book: HealthBook = field(default_factory=MemoryBook)
    probe_for: dt.timedelta = dt.timedelta(seconds=60)  # a prober silent this long loses its claim

    @property
    def health(self) -> TargetHealth:
        return self.book.get(self.target)

    @property
    def state(self) -> str:
        return self.health.breaker

    @property
    def hold_until(self) -> dt.datetime | None:
        return self.health.held_until

    def batch_limit(self, normal: int) -> int:
        """How many items the next exchange may carry: one while probing a target that was down."""
        h = self.health
        return 1 if h.breaker == "half_open" and h.probe_owner == self.owner else normal

    def may_send(self) -> bool:
        now = self.clock.now()
        h = self.health
        if h.held_until is not None and now < h.held_until:
            return False
        if h.breaker == "open" or (h.breaker == "half_open" and h.probe_owner != self.owner):
            if h.breaker == "open" and h.opened_at is not None and now - h.opened_at < self.open_for:
                return False
            if h.breaker == "half_open" and h.probe_until is not None and now < h.probe_until:
                return False
            claimed = self.book.claim_probe(self.target, self.owner, now, self.open_for, now + self.probe_for)
            if claimed is None:
                return False
            log.info("probing %s (half-open) with one item", self.target, extra={"action": "breaker_probe"})
        return True

    def record(self, results: Sequence[AttemptResult]) -> None:
        """What one exchange with the target showed about its health, written where every process reads it."""
        if not results:
            return
        now = self.clock.now()
        results = [r for r in results if not (r.result is Result.RETRYABLE and r.code in _OUR_STOP)]
        if not results:  # all cut short by our own stop; a probe of ours then ends, so another process may probe
            h = self.health
            if h.breaker == "half_open" and h.probe_owner == self.owner:
                self.book.change(self.target, now, lambda row: _end_probe(row, self.owner, now))
            return
        exchange = exchange_of(results)
        h = self.health
        if (
            exchange.kind == "ok"
            and h.breaker == "closed"
            and h.consecutive_failures == 0
            and h.last_success_at is not None
            and (now - h.last_success_at).total_seconds() < SUCCESS_WRITE_SECONDS
        ):
            return  # healthy and said so a moment ago: no write per batch at full speed
        before, after = self.book.change(
            self.target, now, lambda row: after_exchange(row, exchange, now=now, failures=self.failures)
        )
        if before.breaker != "open" and after.breaker == "open":
            logs.event(
                log,
                logging.WARNING,
                "breaker_opened",
                target=self.target,
                consecutive_failures=after.consecutive_failures,
                code=after.last_failure_code,
                message=after.last_failure_message,
                open_seconds=self.open_for.total_seconds(),
                probe_failed=before.breaker == "half_open",
            )
        elif before.breaker != "closed" and after.breaker == "closed":
            down = (now - before.down_since).total_seconds() if before.down_since else None
            logs.event(log, logging.WARNING, "breaker_closed", target=self.target, down_seconds=down)

    def alerting(self) -> bool:
        return alerting(self.health, self.clock.now(), self.alert_after)

    def status(self) -> dict[str, object]:
        return describe(self.health, self.clock.now(), self.alert_after)


def _end_probe(row: TargetHealth, owner: str, now: dt.datetime) -> TargetHealth:
    return replace(row, probe_until=now) if row.breaker == "half_open" and row.probe_owner == owner else row


def for_target(settings: Settings, clock: Clock, target: str, owner: str, book: HealthBook) -> Gate:
    """The gate of ``target`` as the settings describe it (breaker, alert), kept in ``book``."""
    d = settings.delivery
    return Gate(
        clock,
        d.breaker_failures,
        dt.timedelta(seconds=d.breaker_open_seconds),
        dt.timedelta(seconds=d.alert_after_seconds),
        target=target,
        owner=owner,
        book=book,
        probe_for=dt.timedelta(seconds=d.lease_seconds),
    )


def alerting(h: TargetHealth, now: dt.datetime, alert_after: dt.timedelta) -> bool:
    return h.down_since is not None and now - h.down_since >= alert_after


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def describe(h: TargetHealth, now: dt.datetime, alert_after: dt.timedelta) -> dict[str, object]:
    """A target's health as the API, the CLI and ``/metrics`` show it (plain values)."""
    return {
        "breaker": h.breaker,
        "consecutive_failures": h.consecutive_failures,
        "opened_at": _iso(h.opened_at),
        "down_since": _iso(h.down_since),
        "alert": alerting(h, now, alert_after),
        "held_until": _iso(h.held_until) if h.held_until is not None and h.held_until > now else None,
        "last_success_at": _iso(h.last_success_at),
        "last_failure": None
        if h.last_failure_at is None
        else {"at": _iso(h.last_failure_at), "code": h.last_failure_code, "message": h.last_failure_message},
        "updated_at": _iso(h.updated_at),
    }
