"""Stopping within the grace period whatever a target does (``SHUTDOWN_GRACE_SECONDS``).

On SIGTERM ``serve`` stops accepting and gives open HTTP requests a quarter of the grace period (uvicorn's
graceful shutdown), then stops the scheduled jobs and the delivery worker: no new leases, and the exchanges under
way may go on until half the grace period has passed. Whatever is still talking to a target then is cancelled:
its sockets are shut and its items settle as retryable (code ``cancelled``, back to ``retry_wait`` with the usual
backoff); the other half is for recording that, closing up and exiting. Were even that impossible (the database
gone too), the leases simply expire and another worker sends the items again under the same keys: nothing is
lost. ``credit-gateway worker`` has no HTTP side: its exchanges get the first half whole.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module at start: keep httpx out until a command needs it
    from adapters.client import TargetClient

log = logging.getLogger("gateway.shutdown")


def http_seconds(grace: float) -> int:
    """uvicorn's ``timeout_graceful_shutdown`` (whole seconds) for open HTTP requests: a quarter of the grace."""
    return max(1, int(grace / 4))


def exchange_seconds(grace: float, *, serves_http: bool) -> float:
    """How long exchanges under way may go on after the stop began, before they are cancelled.

    The second half of the grace period is kept for what follows a cancellation: recording the cut-short items,
    closing connections and pools, and the interpreter's own exit, which on a loaded host takes a second or more.
    """
    budget = grace / 2 - (http_seconds(grace) if serves_http else 0)
    return max(0.0, budget)


@contextlib.contextmanager
def cancel_after(seconds: float, clients: Callable[[], Iterable[TargetClient]]) -> Iterator[None]:
    """Run the block (stopping the scheduler, which waits for running jobs); past ``seconds`` cancel every
    exchange still open with ``clients``, so the block ends however a target behaves."""

    def cancel() -> None:
        names = []
        for client in clients():
            client.cancel()
            names.append(client.name)
        log.warning(
            "grace period over: exchanges still under way with %s cancelled; their items will be sent again",
            ", ".join(names),
            extra={"action": "exchanges_cancelled"},
        )

    timer = threading.Timer(seconds, cancel)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
