"""``Services``: the application layer as the edges hold it (one per process, from ``gateway.compose``)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.archive.importer import Importer
from gateway.checks import CreditChecks
from gateway.clock import Clock
from gateway.gate import StoreBook, for_target
from gateway.housekeeping import Housekeeping
from gateway.mailer import ReportMailer
from gateway.metrics import Metrics
from gateway.people import People
from gateway.services.actors import Actor
from gateway.services.audit import Audit
from gateway.services.keys import Keys
from gateway.services.operations import Operations
from gateway.services.records import Records
from gateway.services.targets import Targets
from gateway.settings import Settings
from outbox.people import PeopleStore
from outbox.store import Store

if TYPE_CHECKING:
    from gateway.worker import Worker


@dataclass
class Services:
    settings: Settings
    store: Store
    clock: Clock
    metrics: Metrics
    housekeeping: Housekeeping
    mailer: ReportMailer
    records: Records
    operations: Operations
    targets: Targets
    keys: Keys
    audit: Audit
    worker: Worker | None = None
    _checks: CreditChecks | None = field(default=None, init=False, repr=False)
    _checks_made: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def clients_names(self) -> list[str]:
        return [name for name, t in self.settings.targets.items() if t.enabled]

    def schema_is_current(self) -> bool:
        return self.store.schema_is_current()

    def migrate(self) -> str:
        """Bring the database to the newest schema; the revision it is at."""
        return self.store.migrate()

    def dispose(self) -> None:
        """Close the database connections (the owner of the store, at the end of a command or process)."""
        self.store.db.dispose()

    def checks(self) -> CreditChecks:
        """The credit-check service, made on first use (it owns connections and threads: ``close``)."""
        with self._checks_made:
            if self._checks is None:
                # the worker's national gate when it runs here; else one on the shared breaker (the row it uses)
                gate = (
                    self.worker.gates.get("national")
                    if self.worker is not None
                    else for_target(
                        self.settings, self.clock, "national", f"checks:{os.getpid()}", StoreBook(self.store)
                    )
                )
                self._checks = CreditChecks(self.settings, self.store, self.clock, gate)
            return self._checks

    def people(self) -> People:
        return People(PeopleStore(self.store.db), self.clock)

    def importer(self, actor: Actor) -> Importer:
        return Importer(self.store, self.clock, actor)

    def close(self) -> None:
        """Release what the services hold: the credit checks' threads (the store is its owner's to dispose)."""
        with self._checks_made:
            if self._checks is not None:
                self._checks.close()
                self._checks = None
