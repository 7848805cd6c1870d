"""Credit checks in storage: a subject's records by code, the kept queries, their measures and their counts.

A subject's records are found through the expression indexes of migration 0006 on the stored JSON
(``counterpart.uscc``, ``counterpart.id_number``); the query below writes exactly those expressions, so the
planner uses them on both databases. Whether a record is in force on a day is the caller's judgement (it needs
the period rules); this module only fetches the current, unwithdrawn versions.

A kept check is written once with its audit event in one transaction; measures are appended with theirs. The
listing masks ID numbers: the clear code stays in the row for the bureau's own use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit
from outbox.database import Database
from outbox.errors import RecordNotFound
from outbox.tables import audit_event, credit_check, credit_check_measure, record, record_version
from schemas.identifiers import mask_id_number

CHECKED_KINDS = ("penalties", "commitments", "list-changes")


def subject_expression(dialect: str, path: str) -> str:
    """The indexed expression (keep in step with migration 0006)."""
    if dialect == "postgresql":
        return f"(content -> 'counterpart' ->> '{path}')"
    return f"json_extract(content, '$.counterpart.{path}')"


def subject_records(conn: Connection, code: str) -> list[dict[str, Any]]:
    """The current versions of the unwithdrawn penalties, commitments and list changes about ``code``."""
    dialect = conn.dialect.name
    uscc: sa.ColumnElement[str] = sa.literal_column(subject_expression(dialect, "uscc"))
    id_number: sa.ColumnElement[str] = sa.literal_column(subject_expression(dialect, "id_number"))
    rows = conn.execute(
        sa.select(
            record.c.id,
            record.c.kind,
            record.c.source_system,
            record.c.source_id,
            record.c.department,
            record_version.c.content,
        )
        .select_from(record_version)
        .join(
            record,
            sa.and_(record.c.id == record_version.c.record_id, record.c.current_version == record_version.c.version),
        )
        .where(
            sa.or_(uscc == code, id_number == code),
            record.c.withdrawn_at.is_(None),
            record.c.kind.in_(CHECKED_KINDS),
        )
        .order_by(record.c.id)
    )
    return [dict(r._mapping) for r in rows]


@dataclass(frozen=True, slots=True)
class NewCheck:
    checked_at: dt.datetime
    check_date: dt.date
    actor: str
    role: str
    subject_code: str
    subject_id_type: str | None
    subject_name: str | None
    matter: str
    matter_type: str
    department: str
    requested_by: str
    findings: dict[str, Any]
    sources: list[str]
    national: str
    advice: str
    reasons: list[str]

    def masked_code(self) -> str:
        return masked(self.subject_code, self.subject_id_type)


def masked(code: str, id_type: str | None) -> str:
    """USCCs are public; a person's document number is shown as the portal shows it."""
    return code if id_type is None else mask_id_number(code)


def _audit_detail(check: NewCheck) -> dict[str, Any]:
    return {
        "subject": check.masked_code(),
        "matter_type": check.matter_type,
        "department": check.department,
        "requested_by": check.requested_by,
        "advice": check.advice,
        "sources": check.sources,
    }


def insert(conn: Connection, check: NewCheck) -> int:
    """Keep the check and its audit event (in the caller's transaction); the audit's ``source_id`` is its id."""
    values = {f: getattr(check, f) for f in NewCheck.__slots__}
    check_id: int = conn.execute(sa.insert(credit_check).values(**values).returning(credit_check.c.id)).scalar_one()
    audit.append(
        conn,
        [
            {
                "at": check.checked_at,
                "actor": check.actor,
                "role": check.role,
                "action": "check.run",
                "source_id": str(check_id),
                "detail": _audit_detail(check),
            }
        ],
    )
    return check_id


def _insert_with_audit(check: NewCheck) -> sa.Insert:
    """PostgreSQL: the check and its audit event in one statement (a data-modifying CTE), atomic on its own."""
    values = {f: getattr(check, f) for f in NewCheck.__slots__}
    kept = sa.insert(credit_check).values(**values).returning(credit_check.c.id).cte("kept")
    row = sa.select(
        sa.bindparam("audit_at", check.checked_at, type_=audit_event.c.at.type),
        sa.bindparam("audit_actor", check.actor, type_=sa.String()),
        sa.bindparam("audit_role", check.role, type_=sa.String()),
        sa.literal("check.run", sa.String()),
        sa.cast(kept.c.id, sa.String()),
        sa.cast(sa.bindparam("audit_detail", _audit_detail(check), type_=sa.JSON()), sa.JSON()),
    )
    columns = ["at", "actor", "role", "action", "source_id", "detail"]
    return sa.insert(audit_event).from_select(columns, row).returning(audit_event.c.source_id)


def keep(db: Database, check: NewCheck) -> int:
    """Keep a check with its audit event; on PostgreSQL in one autocommitted statement (no BEGIN/COMMIT trips)."""
    if not db.is_postgres:
        return db.transact(lambda conn: insert(conn, check))

    def once(conn: Connection) -> int:
        statement = _insert_with_audit(check)
        return int(conn.execution_options(isolation_level="AUTOCOMMIT").execute(statement).scalar_one())

    return db.read(once)


def read_subject(db: Database, code: str) -> list[dict[str, Any]]:
    """``subject_records`` in one statement; on PostgreSQL autocommitted (no BEGIN/ROLLBACK round trips)."""

    def once(conn: Connection) -> list[dict[str, Any]]:
        if db.is_postgres:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return subject_records(conn, code)

    return db.read(once)


def add_measure(
    conn: Connection, *, check_id: int, measure: str, note: str | None, actor: str, role: str, now: dt.datetime
) -> None:
    """Append a measure; the history is kept and the latest one is the measure in force."""
    found = conn.execute(sa.select(credit_check.c.id).where(credit_check.c.id == check_id)).scalar_one_or_none()
    if found is None:
        raise RecordNotFound(f"no credit check {check_id}")
    conn.execute(
        sa.insert(credit_check_measure).values(
            check_id=check_id, at=now, actor=actor, role=role, measure=measure, note=note
        )
    )
    audit.append(
        conn,
        [
            {
                "at": now,
                "actor": actor,
                "role": role,
                "action": "check.measure",
                "source_id": str(check_id),
                "detail": {"check_id": check_id, "measure": measure, "note": note},
            }
        ],
    )


def _view(row: sa.Row[Any] | dict[str, Any], measures: Sequence[sa.Row[Any]]) -> dict[str, Any]:
    m = row._mapping if isinstance(row, sa.Row) else row
    history = [
        {"measure": h.measure, "note": h.note, "at": h.at.isoformat(), "by": h.actor}
        for h in sorted(measures, key=lambda h: h.id)
    ]
    return {
        "id": m["id"],
        "checked_at": m["checked_at"].isoformat(),
        "check_date": m["check_date"].isoformat(),
        "asked_by": m["actor"],
        "requested_by": m["requested_by"],
        "department": m["department"],
        "matter": m["matter"],
        "matter_type": m["matter_type"],
        "subject": {
            "code": masked(m["subject_code"], m["subject_id_type"]),
            "id_type": m["subject_id_type"],
            "name": m["subject_name"],
        },
        "findings": m["findings"],
        "sources": m["sources"],
        "national": m["national"],
        "advice": m["advice"],
        "reasons": m["reasons"],
        "measure": history[-1] if history else None,
        "measures": history,
    }


def view_of_new(check: NewCheck, check_id: int) -> dict[str, Any]:
    """The view of a check just kept, as ``get`` would read it back (without reading it back)."""
    return _view({"id": check_id, **{f: getattr(check, f) for f in NewCheck.__slots__}}, [])


def get(conn: Connection, check_id: int) -> dict[str, Any]:
    row = conn.execute(sa.select(credit_check).where(credit_check.c.id == check_id)).one_or_none()
    if row is None:
        raise RecordNotFound(f"no credit check {check_id}")
    measures = conn.execute(sa.select(credit_check_measure).where(credit_check_measure.c.check_id == check_id)).all()
    return _view(row, measures)


def listing(
    conn: Connection,
    *,
    start: dt.datetime | None,
    end: dt.datetime | None,
    department: str | None,
    advice: str | None,
    limit: int,
    after_id: int | None = None,
) -> list[dict[str, Any]]:
    """Kept checks, oldest first; ``start``/``end`` bound ``checked_at`` (end exclusive)."""
    query = sa.select(credit_check).order_by(credit_check.c.id).limit(limit)
    if start is not None:
        query = query.where(credit_check.c.checked_at >= start)
    if end is not None:
        query = query.where(credit_check.c.checked_at < end)
    if department is not None:
        query = query.where(credit_check.c.department == department)
    if advice is not None:
        query = query.where(credit_check.c.advice == advice)
    if after_id is not None:
        query = query.where(credit_check.c.id > after_id)
    rows = conn.execute(query).all()
    measures: dict[int, list[sa.Row[Any]]] = {}
    if rows:
        ids = [r.id for r in rows]
        for m in conn.execute(sa.select(credit_check_measure).where(credit_check_measure.c.check_id.in_(ids))):
            measures.setdefault(m.check_id, []).append(m)
    return [_view(r, measures.get(r.id, [])) for r in rows]


def rows_between(conn: Connection, *, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """For the 联合奖惩 report: each check of the window with its latest measure (None if none yet)."""
    latest = (
        sa.select(credit_check_measure.c.check_id, sa.func.max(credit_check_measure.c.id).label("last_id"))
        .group_by(credit_check_measure.c.check_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            credit_check.c.id,
            credit_check.c.department,
            credit_check.c.subject_code,
            credit_check.c.findings,
            credit_check.c.advice,
            credit_check_measure.c.measure,
        )
        .select_from(credit_check)
        .outerjoin(latest, latest.c.check_id == credit_check.c.id)
        .outerjoin(credit_check_measure, credit_check_measure.c.id == latest.c.last_id)
        .where(credit_check.c.checked_at >= start, credit_check.c.checked_at < end)
        .order_by(credit_check.c.id)
    )
    return [dict(r._mapping) for r in rows]


def purge(conn: Connection, *, before: dt.datetime, actor: str, now: dt.datetime) -> int:
    """Retention: delete checks made before ``before`` (with their measures); audited with the count."""
    old = sa.select(credit_check.c.id).where(credit_check.c.checked_at < before).scalar_subquery()
    conn.execute(sa.delete(credit_check_measure).where(credit_check_measure.c.check_id.in_(old)))
    count = conn.execute(sa.delete(credit_check).where(credit_check.c.checked_at < before)).rowcount
    if count:
        audit.append(
            conn,
            [
                {
                    "at": now,
                    "actor": actor,
                    "role": "operator",
                    "action": "check.purge",
                    "detail": {"before": before.isoformat(), "deleted": count},
                }
            ],
        )
    return int(count)
