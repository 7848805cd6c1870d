"""The facts the plan's quotas count, read from the store: which records were accepted by which target, by when.

A record counts for a quota once a target accepted one of its versions (the first business acceptance, as for
公示率) before the cut-off ``published_before`` (the end of the report's as-of day), so a report built again later
for the same day gives the same figures. Records are placed in a month or year by their record date
(``decided_on``: an article's publication date, a list change's effective date).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.states import Operation
from outbox.tables import delivery, record, record_version

ARTICLE_KINDS = ("cases", "news")  # CONTRACT.md "Articles"
LIST_KIND = "list-changes"


def without_parallel_workers(conn: Connection) -> None:
    """PostgreSQL: run this transaction's scans in its own process only, for a read that runs beside another
    (a report counts the quotas on a connection of their own while the standings are counted on another):
    parallel workers would take the cores the other read needs (on 2 cores a full report over a million
    deliveries took about 15 % less without them)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('max_parallel_workers_per_gather', '0', true)"))


def _accepted(published_before: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        delivery.c.record_id == record.c.id,
        delivery.c.operation == Operation.PUBLISH.value,
        delivery.c.published_at.is_not(None),
        delivery.c.published_at < published_before,
    )


def accepted_articles(
    conn: Connection, *, decided_from: dt.date, decided_to: dt.date, published_before: dt.datetime
) -> list[tuple[int, str, str, dt.date, str]]:
    """(record id, kind, department, date, target) for each article of the span and each target that took it."""
    rows = conn.execute(
        sa.select(record.c.id, record.c.kind, record.c.department, record.c.decided_on, delivery.c.target)
        .join(delivery, _accepted(published_before))
        .where(
            record.c.kind.in_(ARTICLE_KINDS),
            record.c.decided_on >= decided_from,
            record.c.decided_on <= decided_to,
        )
        .distinct()
    )
    return [(int(r.id), r.kind, r.department, r.decided_on, r.target) for r in rows]


def accepted_list_changes(
    conn: Connection, *, decided_from: dt.date, decided_to: dt.date, published_before: dt.datetime
) -> dict[tuple[str, str], int]:
    """(department, ``red``/``black``) → list changes of the span accepted by at least one target."""
    colour = record_version.c.content["list"].as_string().label("colour")
    rows = conn.execute(
        sa.select(record.c.department, colour, sa.func.count().label("n"))
        .join(
            record_version,
            sa.and_(record_version.c.record_id == record.c.id, record_version.c.version == record.c.current_version),
        )
        .where(
            record.c.kind == LIST_KIND,
            record.c.decided_on >= decided_from,
            record.c.decided_on <= decided_to,
            sa.exists(sa.select(delivery.c.id).where(_accepted(published_before))),
        )
        .group_by(record.c.department, colour)
    )
    return {(r.department, r.colour): int(r.n) for r in rows}


def year_counts(conn: Connection, *, decided_from: dt.date, decided_to: dt.date) -> dict[tuple[str, str], int]:
    """(department, kind) → records of the span, every kind: who is held to the quotas unasked, and the 年度记录."""
    rows = conn.execute(
        sa.select(record.c.department, record.c.kind, sa.func.count().label("n"))
        .where(record.c.decided_on >= decided_from, record.c.decided_on <= decided_to)
        .group_by(record.c.department, record.c.kind)
    )
    return {(r.department, r.kind): int(r.n) for r in rows}
