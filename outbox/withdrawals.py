"""The withdrawal transaction (撤销, 信用修复, 公示期满): take a record back from every target.

Per target: publishes that were never sent are superseded; where the target may hold the record (a publish is
in flight, awaiting its result or published, or any attempt reached it) a withdraw delivery is queued; where
nothing was ever sent, a withdraw delivery is still written but straight away ``cancelled`` with that reason, so
the record view shows a decision for every target instead of a silence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit, errors, notify
from outbox.ingest import Actor
from outbox.states import MAY_HOLD, REPLACEABLE, DeliveryState, Operation, idempotency_key
from outbox.tables import delivery, record
from schemas.enums import Kind, WithdrawReason

NOTHING_TO_WITHDRAW = "never sent to this target: nothing to withdraw"


@dataclass(frozen=True, slots=True)
class Withdrawal:
    record_id: int
    version: int
    already: bool  # the record had been withdrawn before: nothing changed
    deliveries: list[dict[str, str]]


def withdraw(
    conn: Connection,
    *,
    source_system: str,
    kind: Kind,
    source_id: str,
    reason: WithdrawReason,
    note: str | None,
    actor: Actor,
    now: dt.datetime,
) -> Withdrawal:
    query = sa.select(record.c.id, record.c.current_version, record.c.withdrawn_at).where(
        record.c.source_system == source_system, record.c.kind == kind.value, record.c.source_id == source_id
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise errors.RecordNotFound(f"no {kind.value} record with source_id {source_id!r}")
    if row.withdrawn_at is not None:
        return Withdrawal(row.id, row.current_version, True, _withdraw_deliveries(conn, row.id))

    publishes_query = sa.select(delivery.c.target, delivery.c.state, delivery.c.attempts).where(
        delivery.c.record_id == row.id, delivery.c.operation == Operation.PUBLISH.value
    )
    if conn.dialect.name == "postgresql":
        # Lock the publishes as read: a worker leasing one between this read and the supersede below would send
        # it while the withdrawal, judging from the stale 'pending', was cancelled as "never sent", leaving the
        # record public on that target. Locked, the lease waits for this transaction or skips the row.
        publishes_query = publishes_query.with_for_update()
    publishes = conn.execute(publishes_query).all()
    may_hold = {p.target for p in publishes if p.state in MAY_HOLD or p.attempts > 0}
    targets = sorted({p.target for p in publishes})

    conn.execute(
        sa.update(delivery)
        .where(
            delivery.c.record_id == row.id,
            delivery.c.operation == Operation.PUBLISH.value,
            delivery.c.state.in_([s.value for s in REPLACEABLE]),
        )
        .values(state=DeliveryState.SUPERSEDED.value, updated_at=now)
    )
    if targets:
        conn.execute(
            sa.insert(delivery),
            [_withdraw_row(row.id, row.current_version, t, t in may_hold, now) for t in targets],
        )
    conn.execute(
        sa.update(record)
        .where(record.c.id == row.id)
        .values(withdrawn_at=now, withdraw_reason=reason.value, withdraw_note=note, updated_at=now)
    )
    audit.append(
        conn,
        [
            {
                "at": now,
                "actor": actor.name,
                "role": actor.role,
                "action": "record.withdraw",
                "kind": kind.value,
                "source_id": source_id,
                "record_id": row.id,
                "detail": {"reason": reason.value, "note": note, "targets": targets, "sent_to": sorted(may_hold)},
            }
        ],
    )
    notify.notify(conn, sorted(may_hold))
    return Withdrawal(row.id, row.current_version, False, _withdraw_deliveries(conn, row.id))


def _withdraw_row(record_id: int, version: int, target: str, send: bool, now: dt.datetime) -> dict[str, object]:
    return {
        "record_id": record_id,
        "version": version,
        "target": target,
        "operation": Operation.WITHDRAW.value,
        "state": (DeliveryState.PENDING if send else DeliveryState.CANCELLED).value,
        "idempotency_key": idempotency_key(record_id, version, Operation.WITHDRAW, target),
        "attempts": 0,
        "next_attempt_at": now,
        "last_message": None if send else NOTHING_TO_WITHDRAW,
        "created_at": now,
        "updated_at": now,
    }


def _withdraw_deliveries(conn: Connection, record_id: int) -> list[dict[str, str]]:
    rows = conn.execute(
        sa.select(delivery.c.target, delivery.c.state)
        .where(delivery.c.record_id == record_id, delivery.c.operation == Operation.WITHDRAW.value)
        .order_by(delivery.c.target)
    )
    return [{"target": r.target, "state": r.state} for r in rows]
