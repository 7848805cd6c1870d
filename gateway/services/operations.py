"""Operators' actions on deliveries and targets: dead letters, requeue, cancel, pause, resume, replay.

Each names its actor; the store writes the audit entry in the same transaction as the change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock
from gateway.services.actors import Actor, Wake
from gateway.settings import Settings
from outbox.store import Store
from schemas.calendar import start_of_day


class UnknownTarget(LookupError):
    """A target name the settings do not define."""

    def __init__(self, target: str, names: Sequence[str]) -> None:
        super().__init__(target)
        self.target, self.names = target, list(names)


@dataclass
class Operations:
    settings: Settings
    store: Store
    clock: Clock
    wake: Wake

    def target_names(self) -> list[str]:
        return [name for name, _ in self.settings.targets.items()]

    def known_target(self, target: str) -> str:
        """``target`` itself, or ``UnknownTarget`` naming the choices."""
        if target not in self.target_names():
            raise UnknownTarget(target, self.target_names())
        return target

    def dead_letters(self, **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        """Deliveries that failed for good (filters: target, kind, department, code, limit, offset)."""
        return self.store.dead_letters(**filters)

    def requeue(self, actor: Actor, ids: Sequence[int]) -> int:
        count = self.store.requeue(ids=ids, actor=actor, now=self.clock.now())
        self.wake(name for name, t in self.settings.targets.items() if t.enabled)
        return count

    def cancel(self, actor: Actor, ids: Sequence[int], reason: str | None) -> int:
        return self.store.cancel(ids=ids, actor=actor, now=self.clock.now(), reason=reason)

    def pause(self, actor: Actor, target: str, reason: str | None) -> None:
        self._set_paused(actor, target, True, reason)

    def resume(self, actor: Actor, target: str) -> None:
        self._set_paused(actor, target, False, None)
        self.wake([target])

    def _set_paused(self, actor: Actor, target: str, paused: bool, reason: str | None) -> None:
        self.store.set_paused(
            target=self.known_target(target), paused=paused, reason=reason, actor=actor, now=self.clock.now()
        )

    def replay(self, actor: Actor, target: str, since: dt.date, dry_run: bool) -> list[dict[str, Any]]:
        """What ``target`` accepted on or after the day ``since`` (Asia/Shanghai), sent again unless ``dry_run``."""
        plan = self.store.replay(
            target=self.known_target(target),
            since=start_of_day(since),
            dry_run=dry_run,
            actor=actor,
            now=self.clock.now(),
        )
        if not dry_run:
            self.wake([target])
        return plan
