"""The national subject query with a deadline, behind the national target's breaker and rate limit.

A credit check must answer the approving department quickly whatever the national platform does, so the query
runs in a thread of its own while the local records are read, and the check waits for it at most the deadline
(``checks.national_deadline_seconds``, 3 s by default): the connection's own timeouts are set to the same bound.
The national target's ``Gate`` is shared with the delivery worker when one runs in this process: an open
breaker or a Retry-After hold skips the query at once, and what the query sees counts towards the breaker. So is
its rate limit: a query takes a turn of it, and when none comes within half the deadline (the other half is the
query's) the check answers ``throttled`` at once rather than wait. A busy delivery lane takes its turns first
come, first served with the checks: at a low limit checks may answer ``throttled`` while it drains.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from adapters import replies
from adapters.auth import NationalSigning
from adapters.base import ReplyError
from adapters.national import National, NationalConfig, SubjectReport, interpret_subject
from adapters.transport import Transport, TransportError, make_client
from gateway.clock import Clock
from gateway.gate import Gate
from gateway.settings import Settings
from gateway.targets import pace_of
from outbox.lifecycle import AttemptResult, Result

THROTTLED = {"429", "4290"}


@dataclass(frozen=True, slots=True)
class NationalAnswer:
    """``status``: answered, disabled, timeout, unavailable, breaker_open or throttled."""

    status: str
    report: SubjectReport | None = None
    detail: str | None = None


class NationalSubjects:
    def __init__(self, settings: Settings, clock: Clock, gate: Gate | None = None) -> None:
        t = settings.targets.national
        self.enabled = t.enabled
        self.deadline = settings.checks.national_deadline_seconds
        self.clock = clock
        d = settings.delivery
        self.gate = gate or Gate(
            clock,
            d.breaker_failures,
            dt.timedelta(seconds=d.breaker_open_seconds),
            dt.timedelta(seconds=d.alert_after_seconds),
        )
        self.pace = pace_of("national", t)
        self.adapter = National(NationalConfig(t.app_key, t.app_secret.get_secret_value()))
        self._signing = NationalSigning(self.adapter)
        self._transport = Transport(make_client(timeout_seconds=self.deadline, connections=8), t.base_url, clock.now)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="national-subject")

    def close(self) -> None:
        """End the queries under way and wait for their threads: left running past a timed-out check, one would
        write the target's health later, into a store its owner may be closing by then."""
        self._transport.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._transport.client.close()

    def start(self, code: str) -> Future[NationalAnswer] | NationalAnswer:
        """Begin the query (or answer at once when it must not be asked)."""
        if not self.enabled:
            return NationalAnswer("disabled")
        if not self.gate.may_send():
            held = self.gate.hold_until is not None and self.clock.now() < self.gate.hold_until
            return NationalAnswer("throttled" if held else "breaker_open")
        now = time.monotonic()
        turn = now
        if self.pace is not None:  # a turn within half the deadline, so the other half is left for the query
            delay = self.pace.reserve(within=self.deadline / 2)
            if delay is None:
                limit = f"the national target's rate limit ({self.pace.per_second:g}/s) has no turn for it in time"
                return NationalAnswer("throttled", detail=limit)
            turn = now + delay
        return self._pool.submit(self._ask, code, turn, now + self.deadline)

    def finish(self, pending: Future[NationalAnswer] | NationalAnswer, started: float) -> NationalAnswer:
        """Wait for the answer until the deadline counted from ``started`` (``time.monotonic()``)."""
        if isinstance(pending, NationalAnswer):
            return pending
        remaining = max(0.0, self.deadline - (time.monotonic() - started))
        try:
            return pending.result(timeout=remaining)
        except FutureTimeout:
            pending.cancel()
            return NationalAnswer("timeout", detail=f"no answer within {self.deadline:g} s")

    def _ask(self, code: str, turn: float, until: float) -> NationalAnswer:
        """The query, sent at its turn (``time.monotonic()``) unless the check gave up waiting by then."""
        left = turn - time.monotonic()
        if left > 0 and self._transport.stopping.wait(left):
            return NationalAnswer("unavailable", detail="the gateway stopped before the query's turn")
        if time.monotonic() >= until:  # the check has answered without it: asking now would only load the platform
            return NationalAnswer("timeout", detail="the query's turn came after the check's deadline")
        exchange = self.adapter.subject_exchange(code, now=self.clock.now())
        try:
            reply = self._transport.send(self._signing.apply(exchange.request, self.clock.now()))
        except TransportError as exc:
            if not self._transport.cancelled:  # our own stop says nothing about the platform
                self._record(Result.RETRYABLE, exc.code)
            return NationalAnswer("timeout" if exc.code == "timeout" else "unavailable", detail=exc.message)
        try:
            report = interpret_subject(reply)
        except ReplyError as exc:
            wait = replies.retry_after(reply) if exc.code in THROTTLED else None
            self._record(Result.RETRYABLE, exc.code, wait)
            return NationalAnswer("throttled" if exc.code in THROTTLED else "unavailable", detail=exc.message)
        self._record(Result.ACCEPTED, None)
        return NationalAnswer("answered", report)

    def _record(self, result: Result, code: str | None, retry_after: float | None = None) -> None:
        self.gate.record([AttemptResult("subject-query", result, code=code, retry_after=retry_after)])
