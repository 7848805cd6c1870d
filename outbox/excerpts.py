"""Attempt excerpts in storage: read them for a record's timeline, and empty them once they are past retention.

The attempt rows themselves stay (they are the delivery's history and feed the figures); only the excerpt text is
removed, in batches so that a first prune of a large archive never holds a long transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.tables import attempt, delivery

BATCH = 5000


def for_record(conn: Connection, record_id: int) -> dict[int, list[dict[str, Any]]]:
    """delivery position → its attempts' excerpts, in the order of ``outbox.views`` (deliveries by version and id,
    attempts by id), so the timeline lays them beside the record view's attempts one for one."""
    rows = conn.execute(
        sa.select(delivery.c.id.label("did"), attempt.c.request_excerpt, attempt.c.reply_excerpt)
        .select_from(delivery.join(attempt, attempt.c.delivery_id == delivery.c.id))
        .where(delivery.c.record_id == record_id)
        .order_by(delivery.c.version, delivery.c.id, attempt.c.id)
    )
    found: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault(r.did, []).append({"request_excerpt": r.request_excerpt, "reply_excerpt": r.reply_excerpt})
    return found


def delivery_ids(conn: Connection, record_id: int) -> list[int]:
    rows = conn.execute(
        sa.select(delivery.c.id).where(delivery.c.record_id == record_id).order_by(delivery.c.version, delivery.c.id)
    )
    return [r.id for r in rows]


def prune_batch(conn: Connection, *, before: dt.datetime) -> int:
    """Empty the excerpts of up to ``BATCH`` attempts made before ``before``; how many were emptied."""
    ids = (
        sa.select(attempt.c.id)
        .where(
            attempt.c.at < before,
            sa.or_(attempt.c.request_excerpt.is_not(None), attempt.c.reply_excerpt.is_not(None)),
        )
        .limit(BATCH)
        .scalar_subquery()
    )
    done = conn.execute(
        sa.update(attempt).where(attempt.c.id.in_(ids)).values(request_excerpt=None, reply_excerpt=None)
    )
    return int(done.rowcount)
