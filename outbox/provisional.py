"""Provisional due dates: finding them, and replacing them with official ones in one audited transaction.

A provisional due date was counted before its year's 放假安排 was published (``schemas.calendar``). When the
schedule arrives, the housekeeping job recomputes each distinct (kind, decision date, target) and hands the
answers here. Every delivery whose date or basis changes is updated, and each record concerned gets one
``deadline.recomputed`` audit row naming the old and the new date per target, so an operator can see why a
deadline moved (a make-up working day brings it forward, a bridge day pushes it back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit
from outbox.ingest import Actor
from outbox.states import Operation
from outbox.tables import PROVISIONAL, delivery, record
from schemas.calendar import end_of_day


@dataclass(frozen=True, slots=True)
class Recomputed:
    """The new answer for every provisional delivery of (kind, decided_on, target)."""

    kind: str
    decided_on: dt.date
    target: str
    due_date: dt.date
    basis: str


def provisional_groups(conn: Connection) -> list[tuple[str, dt.date, str]]:
    """Distinct (kind, decision date, target) of publish deliveries with a provisional due date."""
    rows = conn.execute(
        sa.select(record.c.kind, record.c.decided_on, delivery.c.target)
        .join(record, record.c.id == delivery.c.record_id)
        .where(sa.text(PROVISIONAL), delivery.c.operation == Operation.PUBLISH.value)
        .distinct()
    )
    return [(r.kind, r.decided_on, r.target) for r in rows]


def settle(conn: Connection, answers: Sequence[Recomputed], *, actor: Actor, now: dt.datetime) -> list[dict[str, Any]]:
    """Apply the recomputed due dates; returns one change per (record, target) whose date or basis moved."""
    changes: list[dict[str, Any]] = []
    for answer in answers:
        rows = conn.execute(
            sa.select(delivery.c.id, delivery.c.record_id, delivery.c.due_date, record.c.source_id)
            .join(record, record.c.id == delivery.c.record_id)
            .where(
                sa.text(PROVISIONAL),
                delivery.c.operation == Operation.PUBLISH.value,
                delivery.c.target == answer.target,
                record.c.kind == answer.kind,
                record.c.decided_on == answer.decided_on,
            )
            .order_by(delivery.c.id)
        ).all()
        if not rows:
            continue
        if answer.basis == "provisional" and all(r.due_date == answer.due_date for r in rows):
            continue  # still provisional and unchanged: nothing to do
        conn.execute(
            sa.update(delivery)
            .where(delivery.c.id.in_([r.id for r in rows]))
            .values(due_date=answer.due_date, due_by=end_of_day(answer.due_date), due_date_basis=answer.basis)
        )
        seen: set[int] = set()
        for r in rows:
            if r.record_id in seen:  # older versions' deliveries of the same record move alike
                continue
            seen.add(r.record_id)
            changes.append(
                {
                    "record_id": r.record_id,
                    "kind": answer.kind,
                    "source_id": r.source_id,
                    "target": answer.target,
                    "decided_on": answer.decided_on,
                    "from": r.due_date,
                    "to": answer.due_date,
                    "basis": answer.basis,
                }
            )
    _audit(conn, changes, actor, now)
    return changes


def _audit(conn: Connection, changes: Sequence[dict[str, Any]], actor: Actor, now: dt.datetime) -> None:
    by_record: dict[int, list[dict[str, Any]]] = {}
    for change in changes:
        by_record.setdefault(change["record_id"], []).append(change)
    rows = [
        {
            "at": now,
            "actor": actor.name,
            "role": actor.role,
            "action": "deadline.recomputed",
            "kind": mine[0]["kind"],
            "source_id": mine[0]["source_id"],
            "record_id": record_id,
            "detail": {
                "decided_on": mine[0]["decided_on"].isoformat(),
                "targets": {
                    c["target"]: {"from": c["from"].isoformat(), "to": c["to"].isoformat(), "basis": c["basis"]}
                    for c in mine
                },
            },
        }
        for record_id, mine in by_record.items()
    ]
    audit.append(conn, rows)
