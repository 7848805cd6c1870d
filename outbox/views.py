"""Read models: the record view of CONTRACT.md (current content, versions, deliveries with their attempts)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import errors
from outbox.tables import attempt, delivery, record, record_version
from schemas.enums import Kind


def find_record(conn: Connection, kind: Kind, source_id: str, source_system: str | None) -> Any:
    query = sa.select(record).where(record.c.kind == kind.value, record.c.source_id == source_id)
    if source_system is not None:
        query = query.where(record.c.source_system == source_system)
    rows = conn.execute(query.limit(2)).all()
    if not rows:
        raise errors.RecordNotFound(f"no {kind.value} record with source_id {source_id!r}")
    if len(rows) > 1:
        raise errors.AmbiguousRecord()
    return rows[0]


def record_view(conn: Connection, kind: Kind, source_id: str, source_system: str | None) -> dict[str, Any]:
    rec = find_record(conn, kind, source_id, source_system)
    versions = conn.execute(
        sa.select(
            record_version.c.version,
            record_version.c.content_hash,
            record_version.c.received_at,
            record_version.c.content,
        )
        .where(record_version.c.record_id == rec.id)
        .order_by(record_version.c.version)
    ).all()
    current = next(v.content for v in versions if v.version == rec.current_version)
    return {
        "id": rec.id,
        "source_id": rec.source_id,
        "source_system": rec.source_system,
        "kind": rec.kind,
        "version": rec.current_version,
        "decided_on": rec.decided_on.isoformat(),
        "origin": rec.origin,
        "record": current,
        "versions": [
            {"version": v.version, "content_hash": v.content_hash, "received_at": v.received_at.isoformat()}
            for v in versions
        ],
        "withdrawn": None
        if rec.withdrawn_at is None
        else {"reason": rec.withdraw_reason, "note": rec.withdraw_note, "at": rec.withdrawn_at.isoformat()},
        "deliveries": _deliveries(conn, rec.id),
    }


def _deliveries(conn: Connection, record_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(delivery).where(delivery.c.record_id == record_id).order_by(delivery.c.version, delivery.c.id)
    ).all()
    tries: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        for a in conn.execute(
            sa.select(attempt).where(attempt.c.delivery_id.in_([r.id for r in rows])).order_by(attempt.c.id)
        ):
            tries[a.delivery_id].append(
                {
                    "at": a.at.isoformat(),
                    "outcome": a.outcome,
                    "code": a.code,
                    "message": a.message,
                    "duration_ms": a.duration_ms,
                }
            )
    return [
        {
            "target": r.target,
            "version": r.version,
            "operation": r.operation,
            "state": r.state,
            "idempotency_key": r.idempotency_key,
            "due_date": r.due_date.isoformat() if r.due_date else None,
            "due_date_basis": r.due_date_basis,
            "published_at": r.published_at.isoformat() if r.published_at else None,
            "last_code": r.last_code,
            "last_message": r.last_message,
            "attempts": tries[r.id],
        }
        for r in rows
    ]


def known_hashes(
    conn: Connection, source_system: str, kind: Kind, source_ids: list[str]
) -> dict[str, tuple[str, bool]]:
    """source_id → (content hash of the current version, withdrawn) for the records that exist: what an ingest of
    these ids would find, for a dry run that must say what it would do without writing."""
    if not source_ids:
        return {}
    rows = conn.execute(
        sa.select(record.c.source_id, record.c.content_hash, record.c.withdrawn_at).where(
            record.c.source_system == source_system,
            record.c.kind == kind.value,
            record.c.source_id.in_(source_ids),
        )
    )
    return {r.source_id: (r.content_hash, r.withdrawn_at is not None) for r in rows}


def existing_deliveries(conn: Connection, ids: list[int]) -> set[int]:
    """Which of these delivery ids exist (an operator's action names the ones that do not)."""
    if not ids:
        return set()
    return set(conn.execute(sa.select(delivery.c.id).where(delivery.c.id.in_(ids))).scalars())
