"""The one composition root: the services ``serve``, ``worker`` and every CLI command run on.

``build_services`` wires settings, store, clock, calendar, target clients and (where one runs in this process) the
delivery worker into ``gateway.services.Services``. Nothing connects until a use case is called.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.client import TargetClient
from gateway import target_health
from gateway.clock import Clock, SystemClock
from gateway.housekeeping import Housekeeping
from gateway.mailer import ReportMailer
from gateway.metrics import Metrics
from gateway.services.actors import no_worker
from gateway.services.audit import Audit
from gateway.services.bundle import Services
from gateway.services.keys import Keys
from gateway.services.operations import Operations
from gateway.services.records import Records
from gateway.services.targets import Targets
from gateway.settings import Settings
from gateway.targets import build_clients
from gateway.worker import Worker
from gateway.worker_probe import Probe
from outbox.database import Database
from outbox.store import Store
from schemas import deadlines


def make_store(settings: Settings, rules: deadlines.Deadlines | None = None) -> Store:
    """The store, stamping due dates from ``rules`` (built from the settings when not given)."""
    db = Database(
        settings.database_url, pool_size=settings.db_pool_size, sqlite_synchronous=settings.sqlite_synchronous
    )
    rules = rules or deadlines.from_settings(settings.deadlines)
    return Store(db, settings.targets.routes(), rules.due_dates)


def build_services(
    settings: Settings,
    *,
    store: Store | None = None,
    clock: Clock | None = None,
    worker: Worker | None = None,
    clients: Callable[[], dict[str, TargetClient]] | None = None,
    rules: deadlines.Deadlines | None = None,
) -> Services:
    """The application layer on one calendar (ingest, the push loop and reports share it).

    ``clients`` gives the targets' clients to reconciliation: the worker's when it runs here, otherwise a new set
    per call (the CLI's one-shot commands)."""
    rules = rules or deadlines.from_settings(settings.deadlines)
    store = store or make_store(settings, rules)
    clock = clock or SystemClock()
    chosen_clock = clock
    clients = clients or (lambda: build_clients(settings, chosen_clock))
    wake = worker.wake if worker is not None else no_worker
    housekeeping = Housekeeping(settings, store, clock, rules, clients, wake)
    metrics = Metrics()
    return Services(
        settings=settings,
        store=store,
        clock=clock,
        metrics=metrics,
        housekeeping=housekeeping,
        mailer=ReportMailer(housekeeping, rules.calendar),
        records=Records(store, clock, metrics, housekeeping, wake),
        operations=Operations(settings, store, clock, wake),
        targets=Targets(settings, store, lambda: target_health.report(settings, store, chosen_clock)),
        keys=Keys(store, clock),
        audit=Audit(store),
        worker=worker,
    )


def build_worker(settings: Settings, store: Store, clock: Clock, rules: deadlines.Deadlines | None = None) -> Worker:
    """A delivery worker with its own clients to the targets."""
    return Worker(settings, store, build_clients(settings, clock), clock, rules=rules)


def build_worker_services(settings: Settings) -> Services:
    """The services of a ``credit-gateway worker`` process: a delivery worker (not started) and its store."""
    rules = deadlines.from_settings(settings.deadlines)
    store, clock = make_store(settings, rules), SystemClock()
    worker = build_worker(settings, store, clock, rules)
    return build_services(
        settings, store=store, clock=clock, worker=worker, clients=lambda: worker.clients, rules=rules
    )


def worker_probe(services: Services, *, host: str, port: int) -> Probe:
    """The worker process's own /healthz, /readyz and /metrics (not started). Raises ``OSError`` if the port is
    taken."""
    assert services.worker is not None
    return Probe(services.worker, services.store, services.metrics, host=host, port=port)
