"""Time as a dependency: the only place the gateway reads the wall clock, and a manual clock for tests."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol

from schemas.calendar import local_day


def monotonic() -> float:
    """Seconds on a clock that never jumps: for bounding how old a cached value is, not for what time it is."""
    return time.monotonic()


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """An aware datetime."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """A clock that moves only when told to; thread-safe so servers under test can share it."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, moment: dt.datetime) -> None:
        with self._lock:
            self._now = moment


def local_date(clock: Clock) -> dt.date:
    """Today where the bureau is (deadlines and "no future decision date" are judged in Asia/Shanghai)."""
    return local_day(clock.now())


class ShiftableClock:
    """Real time plus an offset that only grows: for running systems whose tests must skip ahead (backoff,
    breaker timeouts) while everything else keeps moving at the normal pace."""

    def __init__(self) -> None:
        self._offset = dt.timedelta()
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return dt.datetime.now(dt.UTC) + self._offset

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self._offset += delta
