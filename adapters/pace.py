"""A target's rate limit: the requests this process sends it start at least ``1 / rate`` seconds apart.

The limit counts requests on the wire, not batches: the portal takes one request per notice, so a batch of 200
notices is 200 requests, and a limit counted per batch would let 200 times the configured rate through. Each
exchange (a batch, a notice, a results poll, a holdings page, a credit check's subject query) takes one slot; a
token fetch or the retry after a 401 rides on its exchange's slot.

Slots are spaced evenly, without a burst allowance: a platform that asks for "at most 5 per second" gets no more
than 5 in any second, wherever the second starts (turns are counted from when they are taken, so a sender that
oversleeps its turn may run closer to the next one). A sender waiting for its turn gives up at once when the
process stops (``TargetClient.halt``/``cancel``), so a low rate never delays shutdown. The limit is per process: several
processes sending to one target should share its limit between them (README, "Configuration").
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class Pace:
    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not per_second > 0:
            raise ValueError(f"a rate limit must be above 0 requests per second, not {per_second}")
        self.per_second = per_second
        self.interval = 1.0 / per_second
        self._clock = clock
        self._next = -math.inf  # when the next slot opens
        self._lock = threading.Lock()

    def reserve(self, within: float = math.inf) -> float | None:
        """Take the next slot if it opens within ``within`` seconds: the seconds to wait for it (0: now). None, and
        nothing taken, if it opens later: for a caller that answers otherwise rather than wait that long."""
        with self._lock:
            now = self._clock()
            at = max(now, self._next)
            if at - now > within:
                return None
            self._next = at + self.interval
            return at - now

    def wait(self, stopping: threading.Event) -> bool:
        """Wait for this request's slot; False if the process began to stop meanwhile (send nothing then)."""
        if stopping.is_set():
            return False  # take no slot: a stopping process would push the others' turns back for nothing
        delay = self.reserve()
        assert delay is not None  # no bound was given
        return delay <= 0 or not stopping.wait(delay)
