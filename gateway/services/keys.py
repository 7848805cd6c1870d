"""API keys: create, list, revoke (audited with the actor), and the look-up every request's authentication makes.

Only a key's hash is stored; the clear key is returned once by ``create``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.services.actors import Actor
from outbox.keys import KeyInfo
from outbox.store import Store

__all__ = ["KeyCache", "KeyInfo", "Keys"]


@dataclass
class Keys:
    store: Store
    clock: Clock

    def create(self, actor: Actor, *, name: str, role: str, kinds: Sequence[str] | None) -> tuple[str, KeyInfo]:
        """The clear key (shown once) and what is stored about it."""
        chosen = None if kinds is None else tuple(kinds)
        return self.store.create_key(
            name=name, role=role, kinds=chosen, actor=actor.name, actor_role=actor.role, now=self.clock.now()
        )

    def listing(self) -> list[KeyInfo]:
        return self.store.list_keys()

    def revoke(self, actor: Actor, prefix: str) -> int:
        return self.store.revoke_key(prefix=prefix, actor=actor.name, actor_role=actor.role, now=self.clock.now())

    def lookup(self, key: str) -> KeyInfo | None:
        return self.store.lookup_key(key)


class KeyCache:
    """Key look-ups kept for ``ttl_seconds`` (monotonic durations), so most requests need no query."""

    def __init__(self, keys: Keys, ttl_seconds: float) -> None:
        self._keys = keys
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, KeyInfo | None]] = {}
        self._lock = threading.Lock()

    def cached(self, key: str) -> tuple[bool, KeyInfo | None]:
        """(True, info) when a fresh answer is at hand; the hot path then needs no thread and no query."""
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return True, hit[1]
        return False, None

    def get(self, key: str) -> KeyInfo | None:
        found, info = self.cached(key)
        if found:
            return info
        now = time.monotonic()
        info = self._keys.lookup(key)
        with self._lock:
            if len(self._entries) > 10_000:  # unknown keys must not grow the cache without bound
                self._entries.clear()
            self._entries[key] = (now, info)
        return info
