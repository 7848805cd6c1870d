"""What the routers and the CLI call: the store plus the clock, settings and metrics it is used with.

Built once by ``gateway.app.build_app`` (or the CLI) and kept on ``app.state.services``; the synchronous methods
run in the thread pool.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.settings import Settings
from outbox.ingest import Incoming, Stored
from outbox.store import Store
from outbox.withdrawals import Withdrawal
from schemas.enums import Kind
from schemas.errors import FieldError

if TYPE_CHECKING:
    from gateway.api.auth import Principal
    from gateway.api.records import WithdrawBody
    from gateway.housekeeping import Housekeeping
    from gateway.mailer import ReportMailer
    from gateway.worker import Worker


@dataclass
class Services:
    settings: Settings
    store: Store
    clock: Clock
    metrics: Metrics
    worker: Worker | None = None
    housekeeping: Housekeeping = field(init=False)
    mailer: ReportMailer = field(init=False)

    def ingest(self, principal: Principal, kind: Kind, items: Sequence[Incoming], atomic: bool) -> list[Stored]:
        if not items:
            return []
        started = time.perf_counter()
        stored = self.store.ingest(
            source_system=principal.name,
            kind=kind,
            items=items,
            actor=principal.actor,
            now=self.clock.now(),
            atomic=atomic,
        )
        self.metrics.ingest_seconds.labels(kind.value).observe(time.perf_counter() - started)
        if self.worker is not None and any(s.status in ("created", "updated") for s in stored):
            self.worker.wake(self.store.routes.get(kind, ()))
        for status, count in Counter(s.status for s in stored).items():
            self.metrics.ingested.labels(kind.value, "rejected" if status == "withdrawn" else status).inc(count)
        return stored

    def clients_names(self) -> list[str]:
        return [name for name, t in self.settings.targets.items() if t.enabled]

    def refused(self, principal: Principal, kind: Kind, errors: Sequence[FieldError], items: int = 1) -> None:
        """Audit a refused request: the source's action is on record even though nothing else was written."""
        self.metrics.rejected(kind, items)
        detail = {"items": items, "errors": [{"field": e.field, "code": e.code} for e in errors[:50]]}
        self.store.audit(principal.actor, "ingest.refused", self.clock.now(), kind=kind, detail=detail)

    def withdraw(
        self, principal: Principal, kind: Kind, source_id: str, body: WithdrawBody, source_system: str | None
    ) -> Withdrawal:
        if source_system is None:  # an operator who named no source system: the record's own, if unambiguous
            source_system = self.store.source_system_of(kind, source_id)
        result = self.store.withdraw(
            source_system=source_system,
            kind=kind,
            source_id=source_id,
            reason=body.reason,
            note=body.note,
            actor=principal.actor,
            now=self.clock.now(),
        )
        if not result.already:
            self.metrics.withdrawals.labels(kind.value, body.reason.value).inc()
            if self.worker is not None:
                self.worker.wake(d["target"] for d in result.deliveries if d["state"] == "pending")
        return result
