"""Who acts, and how a use case tells the push loop there is work: the plain values every service takes.

An ``Actor`` names the person or system and its role, as the audit log records them: a key's name over the API,
the OS user (or ``--actor``) on the CLI, ``scheduler`` for scheduled jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from outbox.ingest import Actor

__all__ = ["Actor", "Wake", "no_worker"]

# Tells the worker in this process (if any) that these targets have work; a no-op where no worker runs.
Wake = Callable[[Iterable[str]], None]


def no_worker(targets: Iterable[str]) -> None:
    """The wake of a process without a worker: workers elsewhere poll the database."""
