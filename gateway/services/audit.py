"""The audit log as operators read it: entries with filters (actor, action, time) and the hash chain's verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outbox.audit import Verdict
from outbox.store import Store

__all__ = ["Audit", "Verdict"]


@dataclass
class Audit:
    store: Store

    def entries(self, **filters: Any) -> list[dict[str, Any]]:
        """Filters: actor, action, since, until, limit (``outbox.audit.listing``)."""
        return self.store.audit_entries(**filters)

    def verify(self, *, limit: int = 20) -> Verdict:
        """Walk the chain; the verdict names the first entry altered, removed or inserted."""
        return self.store.verify_audit(limit=limit)
