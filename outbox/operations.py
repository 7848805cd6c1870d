"""Operator actions on deliveries and targets, each written to the audit log with who did it.

* dead letters: list (by target, kind, department, error code), requeue (a fresh retry budget), cancel;
* targets: pause and resume (persisted, so every worker process honours it);
* replay: send a target again what it should hold (published since a date), as new deliveries with new keys so
  the platform applies them again; a dry run lists what would be sent without writing anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit, notify
from outbox.ingest import Actor
from outbox.states import DeliveryState, Operation
from outbox.tables import delivery, record, target_state

CANCELLABLE = (DeliveryState.DEAD, DeliveryState.PENDING, DeliveryState.RETRY_WAIT)


def _audit(conn: Connection, actor: Actor, action: str, now: dt.datetime, detail: dict[str, Any]) -> None:
    audit.append(conn, [{"at": now, "actor": actor.name, "role": actor.role, "action": action, "detail": detail}])


def dead_letters(
    conn: Connection,
    *,
    target: str | None = None,
    kind: str | None = None,
    department: str | None = None,
    code: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    where = [delivery.c.state == DeliveryState.DEAD.value]
    if target:
        where.append(delivery.c.target == target)
    if kind:
        where.append(record.c.kind == kind)
    if department:
        where.append(record.c.department == department)
    if code:
        where.append(delivery.c.last_code == code)
    joined = delivery.join(record, record.c.id == delivery.c.record_id)
    total = conn.execute(sa.select(sa.func.count()).select_from(joined).where(*where)).scalar_one()
    rows = conn.execute(
        sa.select(
            delivery.c.id,
            delivery.c.target,
            delivery.c.version,
            delivery.c.operation,
            delivery.c.attempts,
            delivery.c.last_code,
            delivery.c.last_message,
            delivery.c.updated_at,
            record.c.kind,
            record.c.source_system,
            record.c.source_id,
            record.c.department,
        )
        .select_from(joined)
        .where(*where)
        .order_by(delivery.c.id)
        .limit(limit)
        .offset(offset)
    )
    return int(total), [
        {
            "id": r.id,
            "target": r.target,
            "kind": r.kind,
            "source_system": r.source_system,
            "source_id": r.source_id,
            "department": r.department,
            "version": r.version,
            "operation": r.operation,
            "attempts": r.attempts,
            "code": r.last_code,
            "message": r.last_message,
            "since": r.updated_at.isoformat(),
        }
        for r in rows
    ]


def requeue(conn: Connection, *, ids: Sequence[int], actor: Actor, now: dt.datetime) -> int:
    """Dead deliveries back to pending, due now, with a fresh retry budget (attempt history is kept).

    The delivery gets a new idempotency key (``…-q1``, ``…-q2``): its old key was answered conclusively, and an
    idempotent platform would answer it the same way again. Retries after timeouts keep their key; this does not.
    """
    rows = conn.execute(
        sa.select(delivery.c.id, delivery.c.target, delivery.c.idempotency_key).where(
            delivery.c.id.in_(list(ids)), delivery.c.state == DeliveryState.DEAD.value
        )
    ).all()
    for row in rows:
        base, _, round_ = row.idempotency_key.partition("-q")
        conn.execute(
            sa.update(delivery)
            .where(delivery.c.id == row.id)
            .values(
                state=DeliveryState.PENDING.value,
                attempts=0,
                retry_since=now,
                next_attempt_at=now,
                idempotency_key=f"{base}-q{int(round_ or 0) + 1}",
                updated_at=now,
            )
        )
    _audit(conn, actor, "delivery.requeue", now, {"ids": [r.id for r in rows], "asked": list(ids)})
    notify.notify(conn, [r.target for r in rows])
    return len(rows)


def cancel(conn: Connection, *, ids: Sequence[int], actor: Actor, now: dt.datetime, reason: str | None) -> int:
    changed = (
        conn.execute(
            sa.update(delivery)
            .where(delivery.c.id.in_(list(ids)), delivery.c.state.in_([s.value for s in CANCELLABLE]))
            .values(
                state=DeliveryState.CANCELLED.value,
                last_message=f"cancelled by {actor.name}: {reason or ''}"[:2000],
                updated_at=now,
            )
            .returning(delivery.c.id)
        )
        .scalars()
        .all()
    )
    _audit(conn, actor, "delivery.cancel", now, {"ids": list(changed), "asked": list(ids), "reason": reason})
    return len(changed)


def set_paused(
    conn: Connection, *, target: str, paused: bool, reason: str | None, actor: Actor, now: dt.datetime
) -> None:
    values = {"paused": paused, "reason": reason, "changed_by": actor.name, "changed_at": now}
    updated = conn.execute(sa.update(target_state).where(target_state.c.target == target).values(**values)).rowcount
    if not updated:
        conn.execute(sa.insert(target_state).values(target=target, **values))
    _audit(conn, actor, "target.pause" if paused else "target.resume", now, {"target": target, "reason": reason})
    if not paused:
        notify.notify(conn, [target])


def paused_targets(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(sa.select(target_state).where(target_state.c.paused.is_(True)))
    return {r.target: {"reason": r.reason, "by": r.changed_by, "at": r.changed_at.isoformat()} for r in rows}


def replay(
    conn: Connection, *, target: str, since: dt.datetime, dry_run: bool, actor: Actor, now: dt.datetime
) -> list[dict[str, Any]]:
    """Re-send to ``target`` the current versions it accepted since ``since`` (records not withdrawn)."""
    record_ids = (
        sa.select(delivery.c.record_id)
        .join(record, sa.and_(record.c.id == delivery.c.record_id, record.c.current_version == delivery.c.version))
        .where(
            delivery.c.target == target,
            delivery.c.operation == Operation.PUBLISH.value,
            delivery.c.state == DeliveryState.PUBLISHED.value,
            delivery.c.published_at >= since,
            record.c.withdrawn_at.is_(None),
        )
    )
    plan = resend_plan(conn, target, [r for (r,) in conn.execute(record_ids.distinct())], "r")
    if dry_run or not plan:
        return plan
    resend(conn, target, plan, now)
    _audit(conn, actor, "target.replay", now, {"target": target, "since": since.isoformat(), "count": len(plan)})
    return plan


def resend_plan(conn: Connection, target: str, record_ids: Sequence[int], tag: str) -> list[dict[str, Any]]:
    """New publish deliveries of the current versions of ``record_ids`` to ``target``, keyed ``<key>-<tag><n>``.

    A fresh key makes the platform apply the item again (replay after a platform restore, reconciliation after it
    lost or altered an item); the count of earlier copies keeps each key unique. Withdrawn records are skipped.
    """
    if not record_ids:
        return []
    copies = sa.func.count(delivery.c.id).label("copies")
    rows = conn.execute(
        sa.select(
            record.c.id,
            record.c.kind,
            record.c.source_id,
            record.c.source_system,
            record.c.current_version,
            sa.func.min(delivery.c.idempotency_key).label("key"),
            sa.func.max(delivery.c.due_date).label("due_date"),
            sa.func.max(delivery.c.due_by).label("due_by"),
            copies,
        )
        .join(
            delivery,
            sa.and_(
                delivery.c.record_id == record.c.id,
                delivery.c.version == record.c.current_version,
                delivery.c.target == target,
                delivery.c.operation == Operation.PUBLISH.value,
            ),
        )
        .where(record.c.id.in_(list(record_ids)), record.c.withdrawn_at.is_(None))
        .group_by(record.c.id, record.c.kind, record.c.source_id, record.c.source_system, record.c.current_version)
        .order_by(record.c.id)
    ).all()
    return [
        {
            "record_id": r.id,
            "kind": r.kind,
            "source_system": r.source_system,
            "source_id": r.source_id,
            "version": r.current_version,
            "key": f"{r.key}-{tag}{r.copies}",
            "due_date": r.due_date,
            "due_by": r.due_by,
        }
        for r in rows
    ]


def resend(conn: Connection, target: str, plan: Sequence[dict[str, Any]], now: dt.datetime) -> None:
    if not plan:
        return
    conn.execute(
        sa.insert(delivery),
        [
            {
                "record_id": p["record_id"],
                "version": p["version"],
                "target": target,
                "operation": Operation.PUBLISH.value,
                "state": DeliveryState.PENDING.value,
                "idempotency_key": p["key"],
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
                "due_date": p["due_date"],
                "due_by": p["due_by"],
            }
            for p in plan
        ],
    )
    notify.notify(conn, [target])
