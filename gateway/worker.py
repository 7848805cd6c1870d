"""The delivery worker: APScheduler jobs that push, ask for results and reap, for every target, in one process.

Run inside ``serve`` or alone as ``credit-gateway worker`` (several of them on one PostgreSQL scale out: leases
use SKIP LOCKED). Each target has its own push job, its own gate (a breaker shared with every process through the
database) and its client's rate limit (``adapters.pace``), so one target's outage never delays another's pushes.
A job drains its target until nothing is due, then sleeps until its next tick (``push_interval_seconds``) or until
``wake`` is called: after an ingest in this process, or on a PostgreSQL NOTIFY from an ingest in any process.
Stopping stops leasing and lets running batches finish and settle (requests still waiting for their turn under a
rate limit are not sent), within a time limit past which exchanges still open are cancelled (``gateway.shutdown``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from adapters.client import TargetClient
from gateway import shutdown, target_health
from gateway.clock import Clock
from gateway.delivery import DeliveryEngine
from gateway.gate import StoreBook, for_target
from gateway.settings import Settings
from outbox import notify
from outbox.errors import StoreError
from outbox.lifecycle import AttemptResult, RetryPolicy
from outbox.store import Store
from schemas import deadlines

log = logging.getLogger("gateway.worker")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        clients: Mapping[str, TargetClient],
        clock: Clock,
        *,
        owner: str | None = None,
        on_settled: Callable[[str, int], None] | None = None,
        rules: deadlines.Deadlines | None = None,
    ) -> None:
        d = settings.delivery
        self.settings = settings
        self.store = store
        self.clients = dict(clients)
        policy = RetryPolicy(
            max_attempts=d.max_attempts,
            max_age=dt.timedelta(hours=d.max_age_hours),
            initial_seconds=d.initial_backoff_seconds,
            max_wait_seconds=d.max_backoff_seconds,
        )
        self.engine = DeliveryEngine(
            store,
            self.clients,
            clock,
            owner or worker_id(),
            dict.fromkeys(self.clients, policy),
            dt.timedelta(seconds=d.lease_seconds),
            dt.timedelta(seconds=d.poll_interval_seconds),
        )
        calendar = (rules or deadlines.from_settings(settings.deadlines)).calendar
        self.engine.urgent_by = deadlines.RiskHorizon(calendar, settings.deadlines.at_risk_workdays, clock)
        self.book = StoreBook(store)  # one breaker per target, shared with every other process (outbox.health)
        self.gates = {t: for_target(settings, clock, t, self.engine.owner, self.book) for t in self.clients}
        self.clock = clock
        self.engine.observe = self._observe
        self.on_settled = on_settled
        self._dirty = {t: threading.Event() for t in self.clients}
        self._running = {t: threading.Event() for t in self.clients}
        self._stopping = threading.Event()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2 * len(self.clients) + 2)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self._listener: threading.Thread | None = None
        self.listening = threading.Event()  # PostgreSQL: LISTEN was in place once; NOTIFYs wake this worker
        self._paused: set[str] = set()
        self._paused_read = float("-inf")

    @property
    def owner(self) -> str:
        return self.engine.owner

    @property
    def running(self) -> bool:
        """Started and not stopping: what a worker's /readyz reports."""
        return bool(self._scheduler.running) and not self._stopping.is_set()

    def start(self) -> None:
        d = self.settings.delivery
        for target, client in self.clients.items():
            self._scheduler.add_job(
                self._push,
                "interval",
                args=[target],
                id=f"push:{target}",
                seconds=d.push_interval_seconds,
                next_run_time=dt.datetime.now(dt.UTC),
            )
            if client.two_stage:
                self._scheduler.add_job(
                    self._poll, "interval", args=[target], id=f"poll:{target}", seconds=d.poll_interval_seconds
                )
        self._scheduler.add_job(
            self._reap, "interval", id="reap", seconds=d.reap_interval_seconds, next_run_time=dt.datetime.now(dt.UTC)
        )
        self._scheduler.start()
        if self.store.db.is_postgres:
            self._listener = threading.Thread(target=self._listen, name="notify-listener", daemon=True)
            self._listener.start()
        log.info(
            "delivery worker %s started for %s", self.owner, ", ".join(self.clients), extra={"action": "worker_start"}
        )

    def stop(self, within: float | None = None) -> None:
        """Stop leasing; running batches finish and settle; then close the targets' connections.

        With ``within`` (seconds), exchanges still under way after that long are cancelled: their items settle as
        retryable and go back to ``retry_wait`` (``gateway.shutdown``), so the stop ends whatever a target does.
        """
        self._stopping.set()
        for client in self.clients.values():
            client.halt()  # requests waiting for their turn under a rate limit are not sent
        with contextlib.suppress(Exception):
            if within is None:
                self._scheduler.shutdown(wait=True)
            else:
                with shutdown.cancel_after(within, self.clients.values):
                    self._scheduler.shutdown(wait=True)
        if self._listener is not None:
            self._listener.join(timeout=5)
        for client in self.clients.values():
            client.close()
        log.info("delivery worker %s stopped", self.owner, extra={"action": "worker_stop"})

    def wake(self, targets: Iterable[str]) -> None:
        """New work for ``targets``: run their push jobs now instead of at the next tick."""
        for target in targets:
            if target not in self._dirty or self._stopping.is_set():
                continue
            self._dirty[target].set()
            if not self._running[target].is_set():
                with contextlib.suppress(Exception):  # the scheduler may be shutting down
                    self._scheduler.modify_job(f"push:{target}", next_run_time=dt.datetime.now(dt.UTC))

    def status(self) -> dict[str, dict[str, object]]:
        """This worker's targets' shared health, read afresh (what its /metrics shows)."""
        return target_health.report(self.settings, self.store, self.clock, self.clients)

    # -- jobs ---------------------------------------------------------------------------------------------

    def _push(self, target: str) -> None:
        self._running[target].set()
        try:
            while not self._stopping.is_set():
                self._dirty[target].clear()
                self.drain(target)
                if not self._dirty[target].is_set():  # woken while draining: go round once more
                    break
        except Exception:
            log.exception(
                "push job for %s failed; it runs again at the next tick", target, extra={"action": "push_failed"}
            )
        finally:
            self._running[target].clear()

    def paused(self) -> set[str]:
        """Targets an operator paused (read from the database at most once a second: every worker obeys)."""
        now = time.monotonic()
        if now - self._paused_read > 1.0:
            self._paused, self._paused_read = set(self.store.paused_targets()), now
        return self._paused

    def drain(self, target: str) -> None:
        """Push everything due for ``target`` now (unless paused, held or its breaker is open)."""
        if target in self.paused():
            return
        gate, client = self.gates[target], self.clients[target]
        while not self._stopping.is_set() and not client.halted and gate.may_send():
            results = self.engine.push_once(target, gate.batch_limit(client.adapter.max_items))
            if not results:
                return
            if self.on_settled:
                self.on_settled(target, len(results))

    def _observe(self, target: str, results: list[AttemptResult]) -> None:
        try:
            self.gates[target].record(results)
        except StoreError as exc:  # the batch still settles; the next exchange writes the health again
            log.warning("recording %s's health failed: %s", target, exc, extra={"action": "health_write_failed"})

    def _poll(self, target: str) -> None:
        if self._stopping.is_set():
            return
        try:
            while not self._stopping.is_set():
                settled = self.engine.poll_once(target)
                if self.on_settled and settled:
                    self.on_settled(target, settled)
                if settled < self.clients[target].adapter.max_items:
                    return
        except Exception:
            log.exception("result polling for %s failed", target, extra={"action": "poll_failed"})

    def _reap(self) -> None:
        try:
            if self.engine.reap_once():
                self.wake(self.clients)
        except Exception:
            log.exception("reaping expired leases failed", extra={"action": "reap_failed"})

    def _listen(self) -> None:
        """PostgreSQL LISTEN: ingests in other processes wake this worker within a round trip.

        Once listening (again), every target is woken: an ingest committed while nobody listened sent its NOTIFY
        to no one, and would otherwise wait for the push job's next tick.
        """
        notify.listen(self.store.db, self._stopping, self.wake, self._now_listening)

    def _now_listening(self) -> None:
        self.listening.set()
        self.wake(self.clients)
