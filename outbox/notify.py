"""Wake-ups across processes on PostgreSQL: transactions that make deliveries due NOTIFY, workers LISTEN.

A NOTIFY sent inside a transaction is delivered on commit (never for a rolled-back ingest); the payload is the
comma-separated targets with new work. SQLite has one process, where the in-process wake suffices.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.database import Database

CHANNEL = "credit_gateway_due"
SETTLED = "credit_gateway_settled"  # deliveries changed state: for dashboards and tests that wait on progress
log = logging.getLogger("outbox.notify")


def notify(conn: Connection, targets: Sequence[str], channel: str = CHANNEL) -> None:
    """NOTIFY ``channel`` (delivered on commit); the payload names the targets concerned."""
    if conn.dialect.name == "postgresql" and targets:
        conn.execute(
            sa.text("SELECT pg_notify(:channel, :targets)"),
            {"channel": channel, "targets": ",".join(sorted(set(targets)))},
        )


def listen(
    db: Database,
    stopping: threading.Event,
    on_targets: Callable[[list[str]], None],
    on_listening: Callable[[], None] = lambda: None,
) -> None:
    """Call ``on_targets`` for every notification until ``stopping`` is set; reconnect when the server goes.

    ``on_listening`` runs each time LISTEN is in place, at the start and after every reconnect: a commit before
    that notified nobody, so the caller looks for due work itself then rather than waiting for its next tick.
    """
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while not stopping.is_set():
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                _guarded(on_listening)
                while not stopping.is_set():
                    for note in conn.notifies(timeout=1.0):
                        _guarded(on_targets, note.payload.split(","))
        except psycopg.Error as exc:
            log.warning(
                "notification listener lost its connection (%s); reconnecting", exc, extra={"action": "listen_retry"}
            )
            stopping.wait(1.0)


def _guarded(call: Callable[..., None], *args: object) -> None:
    """A failing callback is logged; it must not end the listener, or wake-ups would stop without a word."""
    try:
        call(*args)
    except Exception:
        log.exception("a notification callback failed", extra={"action": "listen_callback_failed"})
