"""Exchange excerpts in storage: read them for a record's timeline, and delete them once they are past retention.

The attempt rows themselves stay (they are the delivery's history and feed the figures); only the exchanges are
deleted, in batches so that a first prune of a large archive never holds a long transaction. An attempt whose
exchange is gone reads as one without an excerpt.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.tables import attempt, delivery, exchange_excerpt

BATCH = 5000


def for_record(conn: Connection, record_id: int) -> dict[int, list[dict[str, Any]]]:
    """delivery position → its attempts' excerpts, in the order of ``outbox.views`` (deliveries by version and id,
    attempts by id), so the timeline lays them beside the record view's attempts one for one."""
    rows = conn.execute(
        sa.select(delivery.c.id.label("did"), exchange_excerpt.c.request, exchange_excerpt.c.reply)
        .select_from(
            delivery.join(attempt, attempt.c.delivery_id == delivery.c.id).outerjoin(
                exchange_excerpt, exchange_excerpt.c.id == attempt.c.excerpt_id
            )
        )
        .where(delivery.c.record_id == record_id)
        .order_by(delivery.c.version, delivery.c.id, attempt.c.id)
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault(r.did, []).append({"request_excerpt": r.request, "reply_excerpt": r.reply})
    return found


def delivery_ids(conn: Connection, record_id: int) -> list[int]:
    rows = conn.execute(
        sa.select(delivery.c.id).where(delivery.c.record_id == record_id).order_by(delivery.c.version, delivery.c.id)
    )
    return [r.id for r in rows]


def prune_batch(conn: Connection, *, before: dt.datetime) -> int:
    """Delete up to ``BATCH`` exchange excerpts made before ``before``; how many were deleted."""
    ids = sa.select(exchange_excerpt.c.id).where(exchange_excerpt.c.at < before).limit(BATCH).scalar_subquery()
    done = conn.execute(sa.delete(exchange_excerpt).where(exchange_excerpt.c.id.in_(ids)))
    return int(done.rowcount)
