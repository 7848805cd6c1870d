"""Every target's health as every process shows it (API, CLI, ``/metrics`` of serve and of each worker): read
from the database, where whichever process talks to a target writes it (``gateway.gate``, ``outbox.health``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from gateway.clock import Clock
from gateway.gate import describe
from gateway.settings import Settings
from outbox.health import TargetHealth
from outbox.store import Store


def report(
    settings: Settings, store: Store, clock: Clock, targets: Iterable[str] | None = None
) -> dict[str, dict[str, object]]:
    """Per target: breaker, failures, alert, throttle, last success and failure, paused (two short reads)."""
    rows, paused = store.target_health(), store.paused_targets()
    now, alert_after = clock.now(), dt.timedelta(seconds=settings.delivery.alert_after_seconds)
    names = list(targets) if targets is not None else [name for name, _ in settings.targets.items()]
    return {
        name: describe(rows.get(name) or TargetHealth(name), now, alert_after) | {"paused": name in paused}
        for name in names
    }
