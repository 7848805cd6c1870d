"""How each target stands: enabled, kinds, deliveries by state, paused, and its health (breaker, throttle, last
success and failure), which is shared by every process through the database (``gateway.target_health``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.settings import Settings
from outbox.store import Store

# Every target's shared health, by target (``gateway.target_health.report``).
Health = Callable[[], Mapping[str, Mapping[str, object]]]


def no_health() -> Mapping[str, Mapping[str, object]]:
    return {}


@dataclass
class Targets:
    settings: Settings
    store: Store
    health: Health = no_health

    def status(self) -> list[dict[str, Any]]:
        """One row per configured target, in the settings' order."""
        counts, paused, health = self.store.delivery_counts(), self.store.paused_targets(), self.health()
        return [
            {
                "target": name,
                "enabled": t.enabled,
                "kinds": [k.value for k in t.kinds],
                "base_url": t.base_url,
                "paused": paused.get(name),
                "deliveries": counts.get(name, {}),
                "health": health.get(name),
            }
            for name, t in self.settings.targets.items()
        ]
