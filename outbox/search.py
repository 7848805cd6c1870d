"""The console's reads: record search, a record's versions with their content, and the per-target overview figures.

Search goes through indexes on both databases: the subject code (USCC or ID number) through the expression indexes
of migration 0006, the counterpart's name (``contains``) through a trigram index on PostgreSQL (migration 0010),
and the rest through ``record``'s own columns. Pages are read one row past the page size, so "is there a next
page" costs no ``count(*)`` over a million rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import checks, rates
from outbox.checks import subject_expression
from outbox.states import DeliveryState
from outbox.tables import attempt, audit_event, credit_check, delivery, record, record_version

# Deliveries the target still owes us an answer on: the backlog an operator watches.
BACKLOG = (
    DeliveryState.PENDING.value,
    DeliveryState.RETRY_WAIT.value,
    DeliveryState.IN_FLIGHT.value,
    DeliveryState.AWAITING_RESULT.value,
)


def name_expression(dialect: str) -> str:
    """The counterpart's name as the trigram index of migration 0010 holds it (keep in step)."""
    if dialect == "postgresql":
        return "(content -> 'counterpart' ->> 'name')"
    return "json_extract(content, '$.counterpart.name')"


@dataclass(frozen=True, slots=True)
class Query:
    source_id: str | None = None
    name: str | None = None  # contains
    code: str | None = None  # USCC or ID number, already normalised
    kind: str | None = None
    department: str | None = None
    state: str | None = None  # some delivery of the record is in this state
    target: str | None = None  # some delivery of the record goes to this target
    decided_from: dt.date | None = None
    decided_to: dt.date | None = None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def search(conn: Connection, q: Query, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
    """Records matching every given filter, newest first; (rows, whether more follow)."""
    rows = [dict(r._mapping) for r in conn.execute(search_query(conn.dialect.name, q, limit=limit, offset=offset))]
    return rows[:limit], len(rows) > limit


def search_query(dialect: str, q: Query, *, limit: int, offset: int) -> sa.Select[Any]:
    """The statement ``search`` runs (one row past the page), for the bench to time bare."""
    name: sa.ColumnElement[str] = sa.literal_column(name_expression(dialect))
    where: list[sa.ColumnElement[bool]] = []
    if q.source_id:
        where.append(record.c.source_id == q.source_id)
    if q.name:
        where.append(name.like(_like(q.name), escape="\\"))
    if q.code:
        uscc: sa.ColumnElement[str] = sa.literal_column(subject_expression(dialect, "uscc"))
        id_number: sa.ColumnElement[str] = sa.literal_column(subject_expression(dialect, "id_number"))
        where.append(sa.or_(uscc == q.code, id_number == q.code))
    if q.kind:
        where.append(record.c.kind == q.kind)
    if q.department:
        where.append(record.c.department == q.department)
    if q.decided_from:
        where.append(record.c.decided_on >= q.decided_from)
    if q.decided_to:
        where.append(record.c.decided_on <= q.decided_to)
    if q.state or q.target:
        d = delivery.alias("d")
        inner = [d.c.record_id == record.c.id]
        if q.state:
            inner.append(d.c.state == q.state)
        if q.target:
            inner.append(d.c.target == q.target)
        where.append(sa.exists(sa.select(d.c.id).where(*inner)))
    return (
        sa.select(
            record.c.id,
            record.c.kind,
            record.c.source_system,
            record.c.source_id,
            record.c.department,
            record.c.decided_on,
            record.c.current_version,
            record.c.withdrawn_at,
            record.c.updated_at,
            name.label("name"),
        )
        .select_from(record_version)
        .join(
            record,
            sa.and_(record.c.id == record_version.c.record_id, record.c.current_version == record_version.c.version),
        )
        .where(*where)
        .order_by(record.c.id.desc())
        .limit(limit + 1)
        .offset(offset)
    )


def versions(conn: Connection, record_id: int) -> list[dict[str, Any]]:
    """Every version of a record with its content, oldest first (the timeline shows what changed)."""
    rows = conn.execute(
        sa.select(record_version.c.version, record_version.c.received_at, record_version.c.content)
        .where(record_version.c.record_id == record_id)
        .order_by(record_version.c.version)
    )
    return [dict(r._mapping) for r in rows]


def record_key(conn: Connection, record_id: int) -> tuple[str, str, str] | None:
    """(kind, source_id, source_system) of a record id, or None."""
    row = conn.execute(
        sa.select(record.c.kind, record.c.source_id, record.c.source_system).where(record.c.id == record_id)
    ).first()
    return None if row is None else (row.kind, row.source_id, row.source_system)


def target_figures(conn: Connection, targets: Sequence[str], now: dt.datetime) -> dict[str, dict[str, Any]]:
    """Per target: backlog, oldest unpublished, published in the last hour and day, dead, failed attempts today.

    Each figure is one indexed query (partial indexes on the open states, ``ix_delivery_published``), never a scan
    of the published history.
    """
    out: dict[str, dict[str, Any]] = {
        t: {"backlog": 0, "oldest": None, "published_hour": 0, "published_day": 0, "dead": 0, "failed_day": 0}
        for t in targets
    }
    open_rows = conn.execute(
        sa.select(delivery.c.target, sa.func.count(), sa.func.min(delivery.c.created_at))
        .where(delivery.c.state.in_(BACKLOG))
        .group_by(delivery.c.target)
    )
    for target, count, oldest in open_rows:
        if target in out:
            out[target]["backlog"] = int(count)
            out[target]["oldest"] = oldest
    for key, since in (("published_hour", now - dt.timedelta(hours=1)), ("published_day", now - dt.timedelta(days=1))):
        for target, count in conn.execute(
            sa.select(delivery.c.target, sa.func.count())
            .where(delivery.c.published_at >= since)
            .group_by(delivery.c.target)
        ):
            if target in out:
                out[target][key] = int(count)
    for target, count in conn.execute(
        sa.select(delivery.c.target, sa.func.count())
        .where(delivery.c.state == DeliveryState.DEAD.value)
        .group_by(delivery.c.target)
    ):
        if target in out:
            out[target]["dead"] = int(count)
    failed = (
        sa.select(delivery.c.target, sa.func.count())
        .select_from(attempt.join(delivery, delivery.c.id == attempt.c.delivery_id))
        .where(attempt.c.at >= now - dt.timedelta(days=1), attempt.c.outcome.in_(("rejected", "retryable")))
        .group_by(delivery.c.target)
    )
    for target, count in conn.execute(failed):
        if target in out:
            out[target]["failed_day"] = int(count)
    return out


def changes(conn: Connection) -> tuple[Any, ...]:
    """A cheap mark that moves whenever a standing may have moved: every settle writes an attempt, every ingest a
    delivery, every operator action, withdrawal or expiry an audit entry (three primary-key lookups)."""
    return tuple(
        conn.execute(
            sa.select(
                sa.select(sa.func.max(attempt.c.id)).scalar_subquery(),
                sa.select(sa.func.max(delivery.c.id)).scalar_subquery(),
                sa.select(sa.func.max(audit_event.c.id)).scalar_subquery(),
            )
        ).one()
    )


def month_groups(
    conn: Connection, *, decided_from: dt.date, decided_to: dt.date, as_of: dt.date, as_of_end: dt.datetime
) -> dict[str, list[rates.Group]]:
    """The report's monthly standings for a few months (the overview's): the same query and arithmetic, but on
    PostgreSQL with the join done by ``ix_delivery_record`` lookups. For one month of a million records the planner
    otherwise hashes the whole delivery table (350 ms measured by bench/console.py; 180 ms this way)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_hashjoin = off")
        conn.exec_driver_sql("SET LOCAL enable_mergejoin = off")
    return rates.monthly_groups(
        conn, decided_from=decided_from, decided_to=decided_to, as_of=as_of, as_of_end=as_of_end
    )


def latest(conn: Connection, kind: str, *, limit: int) -> list[dict[str, Any]]:
    """The newest records of one kind with their title (articles: 典型案例, 工作动态), newest first."""
    title: sa.ColumnElement[str] = sa.literal_column(
        "(content ->> 'title')" if conn.dialect.name == "postgresql" else "json_extract(content, '$.title')"
    )
    rows = conn.execute(
        sa.select(
            record.c.id,
            record.c.source_id,
            record.c.department,
            record.c.decided_on,
            record.c.withdrawn_at,
            record.c.updated_at,
            title.label("title"),
        )
        .select_from(record_version)
        .join(
            record,
            sa.and_(record.c.id == record_version.c.record_id, record.c.current_version == record_version.c.version),
        )
        .where(record.c.kind == kind)
        .order_by(record.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def newest_checks(conn: Connection, *, limit: int) -> list[dict[str, Any]]:
    """The newest kept credit checks, newest first (the listing pages forward by id; ids only grow)."""
    top = conn.execute(sa.select(sa.func.max(credit_check.c.id))).scalar() or 0
    found = checks.listing(
        conn, start=None, end=None, department=None, advice=None, limit=limit, after_id=max(0, top - limit)
    )
    return list(reversed(found))
