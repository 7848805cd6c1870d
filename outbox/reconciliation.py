"""Reconciliation's storage: what we believe a target holds, the runs and their findings, and the re-push.

What we believe a target holds: for each record with a publish accepted by the target, the latest accepted
version (its content is what the platform should list), unless a withdrawal of the record was accepted since.
Records with a delivery to that target still open (pending, in flight, awaiting a result, waiting to retry) are
left out of the comparison: the platform is about to change, and re-pushing them would only race the worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit, operations
from outbox.ingest import Actor
from outbox.states import DeliveryState, Operation
from outbox.tables import delivery, reconciliation_run, record, record_version

OPEN = (
    DeliveryState.PENDING.value,
    DeliveryState.IN_FLIGHT.value,
    DeliveryState.AWAITING_RESULT.value,
    DeliveryState.RETRY_WAIT.value,
)
FINDINGS_CAP = 1000  # items kept per finding list in a run; the counts are always complete


def believed_held(conn: Connection, target: str, chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """Records the target should hold now, with the content of the version it accepted last, in chunks."""
    d = delivery
    published = (
        sa.select(d.c.record_id, sa.func.max(d.c.version).label("version"))
        .where(
            d.c.target == target, d.c.operation == Operation.PUBLISH.value, d.c.state == DeliveryState.PUBLISHED.value
        )
        .group_by(d.c.record_id)
        .subquery("published")
    )
    open_or_withdrawn = sa.select(d.c.record_id).where(
        d.c.target == target,
        sa.or_(
            d.c.state.in_(OPEN),
            sa.and_(d.c.operation == Operation.WITHDRAW.value, d.c.state == DeliveryState.PUBLISHED.value),
        ),
    )
    query = (
        sa.select(
            published.c.record_id, published.c.version, record.c.kind, record.c.source_id, record_version.c.content
        )
        .join(record, record.c.id == published.c.record_id)
        .join(
            record_version,
            sa.and_(
                record_version.c.record_id == published.c.record_id, record_version.c.version == published.c.version
            ),
        )
        .where(published.c.record_id.not_in(open_or_withdrawn))
        .order_by(published.c.record_id)
    )
    last = 0
    while True:
        rows = conn.execute(query.where(published.c.record_id > last).limit(chunk)).all()
        for r in rows:
            yield dict(r._mapping)
        if len(rows) < chunk:
            return
        last = rows[-1].record_id


def with_open_deliveries(conn: Connection, target: str, record_ids: Sequence[int]) -> set[int]:
    """Of ``record_ids``, those with a delivery to ``target`` still open: the platform is about to change them."""
    if not record_ids:
        return set()
    d = delivery
    rows = conn.execute(
        sa.select(d.c.record_id)
        .where(d.c.record_id.in_(list(record_ids)), d.c.target == target, d.c.state.in_(OPEN))
        .distinct()
    )
    return {r.record_id for r in rows}


def start(conn: Connection, *, target: str, actor: Actor, now: dt.datetime) -> int:
    return int(
        conn.execute(
            sa.insert(reconciliation_run)
            .values(target=target, started_at=now, status="running", actor=actor.name)
            .returning(reconciliation_run.c.id)
        ).scalar_one()
    )


def finish(
    conn: Connection,
    *,
    run_id: int,
    target: str,
    counts: dict[str, int],
    findings: dict[str, list[dict[str, Any]]],
    repush: Sequence[int],
    actor: Actor,
    now: dt.datetime,
) -> int:
    """Queue the re-pushes and close the run, in one transaction: a run that says it re-queued did."""
    plan = operations.resend_plan(conn, target, list(repush), "c")
    operations.resend(conn, target, plan, now)
    kept = {name: items[:FINDINGS_CAP] for name, items in findings.items()}
    conn.execute(
        sa.update(reconciliation_run)
        .where(reconciliation_run.c.id == run_id)
        .values(status="done", finished_at=now, requeued=len(plan), findings=kept, **counts)
    )
    detail = {"run": run_id, "target": target, **counts, "requeued": len(plan)}
    audit.append(
        conn, [{"at": now, "actor": actor.name, "role": actor.role, "action": "reconcile.run", "detail": detail}]
    )
    return len(plan)


def fail(conn: Connection, *, run_id: int, error: str, now: dt.datetime) -> None:
    conn.execute(
        sa.update(reconciliation_run)
        .where(reconciliation_run.c.id == run_id)
        .values(status="failed", finished_at=now, findings={"error": error})
    )


def runs(conn: Connection, *, target: str | None, limit: int) -> list[dict[str, Any]]:
    query = sa.select(*[c for c in reconciliation_run.c if c.name != "findings"])
    if target:
        query = query.where(reconciliation_run.c.target == target)
    return [dict(r._mapping) for r in conn.execute(query.order_by(reconciliation_run.c.id.desc()).limit(limit))]


def run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(reconciliation_run).where(reconciliation_run.c.id == run_id)).first()
    return None if row is None else dict(row._mapping)
