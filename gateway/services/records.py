"""Records: ingest (and the audit of a refused request), withdraw, and the record view.

The source system of an ingest is the actor's name (a source key's name); an operator withdrawing names the
record's source system, or none when the record's own is unambiguous.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock
from gateway.housekeeping import Housekeeping
from gateway.metrics import Metrics
from gateway.services.actors import Actor, Wake
from outbox.ingest import Incoming, Stored
from outbox.store import Store
from outbox.withdrawals import Withdrawal
from schemas.enums import Kind, WithdrawReason
from schemas.errors import FieldError

__all__ = ["Incoming", "Records", "Stored", "Withdrawal"]


@dataclass
class Records:
    store: Store
    clock: Clock
    metrics: Metrics
    housekeeping: Housekeeping
    wake: Wake

    def ingest(self, actor: Actor, kind: Kind, items: Sequence[Incoming], atomic: bool) -> list[Stored]:
        if not items:
            return []
        started = time.perf_counter()
        stored = self.store.ingest(
            source_system=actor.name, kind=kind, items=items, actor=actor, now=self.clock.now(), atomic=atomic
        )
        self.metrics.ingest_seconds.labels(kind.value).observe(time.perf_counter() - started)
        if any(s.status in ("created", "updated") for s in stored):
            self.wake(self.store.routes.get(kind, ()))
        for status, count in Counter(s.status for s in stored).items():
            self.metrics.ingested.labels(kind.value, "rejected" if status == "withdrawn" else status).inc(count)
        return stored

    def refused(self, actor: Actor, kind: Kind, errors: Sequence[FieldError], items: int = 1) -> None:
        """Audit a refused request: the source's action is on record even though nothing else was written."""
        self.metrics.rejected(kind, items)
        detail = {"items": items, "errors": [{"field": e.field, "code": e.code} for e in errors[:50]]}
        self.store.audit(actor, "ingest.refused", self.clock.now(), kind=kind, detail=detail)

    def withdraw(
        self,
        actor: Actor,
        kind: Kind,
        source_id: str,
        *,
        reason: WithdrawReason,
        note: str | None,
        source_system: str | None,
    ) -> Withdrawal:
        if source_system is None:  # an operator who named no source system: the record's own, if unambiguous
            source_system = self.store.source_system_of(kind, source_id)
        result = self.store.withdraw(
            source_system=source_system,
            kind=kind,
            source_id=source_id,
            reason=reason,
            note=note,
            actor=actor,
            now=self.clock.now(),
        )
        if not result.already:
            self.metrics.withdrawals.labels(kind.value, reason.value).inc()
            self.wake(d["target"] for d in result.deliveries if d["state"] == "pending")
        return result

    def view(self, kind: Kind, source_id: str, source_system: str | None) -> dict[str, Any]:
        """Current content, versions, deliveries and attempts, with each delivery's deadline standing."""
        return self.housekeeping.annotate(self.store.record_view(kind, source_id, source_system))
