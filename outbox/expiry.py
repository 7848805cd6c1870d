"""Candidates for publication-period expiry: live penalties and list entries whose period may have ended.

Explicit end dates are compared in SQL (ISO dates compare as strings); penalties without one are candidates once
the shortest period could have passed, and ``schemas.expiry`` decides with the rule sets.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.tables import record, record_version


def candidates(conn: Connection, *, today: dt.date, shortest_months_ago: dt.date) -> list[dict[str, Any]]:
    content = record_version.c.content
    publish_until = content["publish_until"].as_string()
    expiry_date = content["expiry_date"].as_string()
    penalties = sa.and_(
        record.c.kind == "penalties",
        sa.or_(
            publish_until < today.isoformat(),
            sa.and_(publish_until.is_(None), record.c.decided_on < shortest_months_ago),
        ),
    )
    lists = sa.and_(
        record.c.kind == "list-changes",
        content["action"].as_string() == "add",
        expiry_date < today.isoformat(),
    )
    rows = conn.execute(
        sa.select(record.c.id, record.c.kind, record.c.source_system, record.c.source_id, content)
        .join(
            record_version,
            sa.and_(record_version.c.record_id == record.c.id, record_version.c.version == record.c.current_version),
        )
        .where(record.c.withdrawn_at.is_(None), sa.or_(penalties, lists))
        .order_by(record.c.id)
    )
    return [dict(r._mapping) for r in rows]
