"""The ingest transaction: records, versions, deliveries and audit rows written together or not at all.

A batch costs a fixed number of statements whatever its size (one multi-row statement per table), which is what
keeps batches near the database's raw batched insert rate. Concurrency:

* First posts of one source_id race on ``INSERT ... ON CONFLICT DO NOTHING``: exactly one wins; PostgreSQL makes
  the losers wait for the winner's commit and then see its row.
* Known records are locked (``SELECT ... FOR UPDATE``, in source_id order so two batches cannot deadlock) before
  their version is compared and bumped; together with the unique (record_id, version) this makes two versions
  with one number impossible. SQLite gets the same serialisation from ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from outbox import audit, notify
from outbox.states import REPLACEABLE, DeliveryState, Operation, idempotency_key
from outbox.tables import delivery, record, record_version
from schemas.calendar import end_of_day
from schemas.deadlines import DueDate
from schemas.enums import Kind
from schemas.validation import Canonical

Status = Literal["created", "updated", "unchanged", "withdrawn"]


# (kind, decision date, targets) → due date per target; targets left out have none (no rule, or no calendar yet).
DueDates = Callable[[Kind, dt.date, Sequence[str]], Mapping[str, DueDate]]


def due_by(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else end_of_day(day)


def _due_columns(due: DueDate | None) -> dict[str, Any]:
    if due is None:
        return {"due_date": None, "due_by": None, "due_date_basis": None}
    return {"due_date": due.day, "due_by": end_of_day(due.day), "due_date_basis": due.basis}


def no_deadlines(kind: Kind, decided_on: dt.date, targets: Sequence[str]) -> Mapping[str, DueDate]:
    return {}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it, as the audit log names them: a key's name and role, or ``cli``."""

    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Incoming:
    canonical: Canonical
    submitted: dict[str, Any]


@dataclass(slots=True)
class Stored:
    """What became of one incoming record. ``withdrawn`` means it was refused: the record takes no new content."""

    source_id: str
    status: Status
    record_id: int
    version: int
    deliveries: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Known:
    id: int
    version: int
    content_hash: str
    withdrawn: bool


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def ingest(
    conn: Connection,
    *,
    source_system: str,
    kind: Kind,
    items: Sequence[Incoming],
    targets: Sequence[str],
    actor: Actor,
    now: dt.datetime,
    due: DueDates = no_deadlines,
    origin: str = "api",
    one_statement: bool = True,
) -> list[Stored]:
    """Store ``items`` (distinct source_ids) and return one ``Stored`` per item, in the order given.

    ``origin`` (``api`` or ``import``) is kept on records this call creates and in their audit rows.
    ``one_statement=False``: the caller tried ``create_one`` already (see there)."""
    if one_statement and one_statement_applies(conn, items, targets):
        fresh_record = _create_in_one_statement(conn, source_system, kind, items[0], targets, actor, now, due, origin)
        if fresh_record is not None:
            return [fresh_record]
    ordered = sorted(items, key=lambda i: i.canonical.source_id)
    created = _insert_new(conn, source_system, kind, ordered, now, origin)
    known = _lock_known(conn, source_system, kind, [i for i in ordered if i.canonical.source_id not in created])

    results: dict[str, Stored] = {}
    fresh: list[tuple[Stored, Incoming]] = []  # new versions: created or updated
    for item in ordered:
        sid = item.canonical.source_id
        if sid in created:
            stored = Stored(sid, "created", created[sid], 1)
            fresh.append((stored, item))
        else:
            old = known[sid]
            if old.content_hash == item.canonical.content_hash:
                stored = Stored(sid, "unchanged", old.id, old.version)
            elif old.withdrawn:
                stored = Stored(sid, "withdrawn", old.id, old.version)
            else:
                stored = Stored(sid, "updated", old.id, old.version + 1)
                fresh.append((stored, item))
        results[sid] = stored

    _write_versions(conn, fresh, now)
    _bump_records([(s, i) for s, i in fresh if s.status == "updated"], conn, now)
    _queue_deliveries(conn, kind, fresh, targets, now, due)
    _current_deliveries(conn, [s for s in results.values() if s.status in ("unchanged", "withdrawn")])
    _audit(conn, kind, actor, results.values(), now, origin)
    if fresh:
        notify.notify(conn, targets)
    return [results[i.canonical.source_id] for i in items]


# The common case on PostgreSQL, a single post of a new record, in one round trip: record, version, one
# delivery per target and the audit row as data-modifying CTEs. When the record exists the CTE inserts nothing
# and the general path takes over. The idempotency key expression must match ``states.idempotency_key``.
_CREATE_ONE = sa.text("""
WITH new_record AS (
    INSERT INTO record (kind, source_system, source_id, current_version, content_hash, department, decided_on,
                        created_at, updated_at, origin)
    VALUES (:kind, :source_system, :source_id, 1, :content_hash, :department, :decided_on, :now, :now, :origin)
    ON CONFLICT (source_system, kind, source_id) DO NOTHING
    RETURNING id
), new_version AS (
    INSERT INTO record_version (record_id, version, content_hash, content, submitted, received_at)
    SELECT id, 1, :content_hash, :content, :submitted, :now FROM new_record
), new_deliveries AS (
    INSERT INTO delivery (record_id, version, target, operation, state, idempotency_key, attempts,
                          next_attempt_at, created_at, updated_at, due_date, due_by, due_date_basis)
    SELECT id, 1, e->>0, 'publish', 'pending', 'cg-' || id || '-v1-p-' || (e->>0), 0, :now, :now, :now,
           (e->>1)::date, (e->>2)::timestamptz, e->>3
    FROM new_record CROSS JOIN json_array_elements(CAST(:deliveries AS json)) AS e
), audit AS (
    INSERT INTO audit_event (at, actor, role, action, kind, source_id, record_id, detail)
    SELECT :now, :actor, :role, 'ingest.created', :kind, :source_id, id, :detail FROM new_record
)
SELECT id, pg_notify(:channel, :notify_targets) FROM new_record
""").bindparams(
    sa.bindparam("now", type_=record.c.created_at.type),
    sa.bindparam("content", type_=sa.JSON()),
    sa.bindparam("submitted", type_=sa.JSON()),
    sa.bindparam("detail", type_=sa.JSON()),
)


def one_statement_applies(conn: Connection, items: Sequence[Incoming], targets: Sequence[str]) -> bool:
    return len(items) == 1 and bool(targets) and conn.dialect.name == "postgresql"


def create_one(
    conn: Connection,
    *,
    source_system: str,
    kind: Kind,
    item: Incoming,
    targets: Sequence[str],
    actor: Actor,
    now: dt.datetime,
    due: DueDates = no_deadlines,
    origin: str = "api",
) -> Stored | None:
    """The one-statement create, meant for an AUTOCOMMIT connection: the statement is its own transaction, so the
    audit chain's lock (taken by the trigger) is released by the server's commit right after the statement, with
    no round trip to the client while it is held. Concurrent single posts then wait on each other only for the
    server-side part. None: the record exists; nothing was written and ``ingest`` (one_statement=False) takes over.
    """
    return _create_in_one_statement(conn, source_system, kind, item, targets, actor, now, due, origin)


def _create_in_one_statement(
    conn: Connection,
    source_system: str,
    kind: Kind,
    item: Incoming,
    targets: Sequence[str],
    actor: Actor,
    now: dt.datetime,
    due: DueDates,
    origin: str,
) -> Stored | None:
    canonical = item.canonical
    dues = [_due_columns(due(kind, canonical.record.decided_on, targets).get(t)) for t in targets]
    record_id = conn.execute(
        _CREATE_ONE,
        {
            "kind": kind.value,
            "source_system": source_system,
            "source_id": canonical.source_id,
            "content_hash": canonical.content_hash,
            "department": canonical.record.department,
            "decided_on": canonical.record.decided_on,
            "now": now,
            "content": canonical.content,
            "submitted": item.submitted,
            # [target, due date, due by, basis] per delivery, as one JSON text: psycopg dumps four arrays element
            # by element, a third of the statement's client-side cost
            "deliveries": orjson.dumps(
                [[t, d["due_date"], d["due_by"], d["due_date_basis"]] for t, d in zip(targets, dues, strict=True)]
            ).decode(),
            "origin": origin,
            "actor": actor.name,
            "role": actor.role,
            "detail": _audit_detail(1, origin),
            "channel": notify.CHANNEL,
            "notify_targets": ",".join(targets),
        },
    ).scalar_one_or_none()
    if record_id is None:
        return None
    pending = DeliveryState.PENDING.value
    return Stored(canonical.source_id, "created", record_id, 1, [{"target": t, "state": pending} for t in targets])


def _insert_new(
    conn: Connection, source_system: str, kind: Kind, items: Sequence[Incoming], now: dt.datetime, origin: str
) -> dict[str, int]:
    if not items:
        return {}
    rows = [
        {
            "kind": kind.value,
            "source_system": source_system,
            "source_id": i.canonical.source_id,
            "current_version": 1,
            "content_hash": i.canonical.content_hash,
            "department": i.canonical.record.department,
            "decided_on": i.canonical.record.decided_on,
            "created_at": now,
            "updated_at": now,
            "origin": origin,
        }
        for i in items
    ]
    stmt = (
        _insert(conn, record)
        .on_conflict_do_nothing(index_elements=["source_system", "kind", "source_id"])
        .returning(record.c.id, record.c.source_id)
    )
    if len(rows) == 1:
        return {sid: rid for rid, sid in conn.execute(stmt.values(rows[0]))}
    if conn.dialect.name == "postgresql":  # one small statement, not one placeholder per value of every row
        parts = [
            (
                i.canonical.source_id,
                i.canonical.content_hash,
                i.canonical.record.department,
                i.canonical.record.decided_on,
            )
            for i in items
        ]
        found = conn.execute(
            _RECORDS,
            {
                "kind": kind.value,
                "source_system": source_system,
                "now": now,
                "origin": origin,
                "rows": orjson.dumps(parts).decode(),
            },
        )
        return {sid: rid for rid, sid in found}
    return {sid: rid for rid, sid in conn.execute(stmt, rows)}


# In the order given (source_id order: two batches wait on each other's new keys in one order, never deadlock).
_RECORDS = sa.text("""
INSERT INTO record (kind, source_system, source_id, current_version, content_hash, department, decided_on,
                    created_at, updated_at, origin)
SELECT :kind, :source_system, e->>0, 1, e->>1, e->>2, (e->>3)::date, :now, :now, :origin
FROM json_array_elements(CAST(:rows AS json)) WITH ORDINALITY AS r(e, n)
ORDER BY n
ON CONFLICT (source_system, kind, source_id) DO NOTHING
RETURNING id, source_id
""").bindparams(sa.bindparam("now", type_=record.c.created_at.type))


def _lock_known(conn: Connection, source_system: str, kind: Kind, items: Sequence[Incoming]) -> dict[str, _Known]:
    if not items:
        return {}
    query = (
        sa.select(
            record.c.id, record.c.source_id, record.c.current_version, record.c.content_hash, record.c.withdrawn_at
        )
        .where(
            record.c.source_system == source_system,
            record.c.kind == kind.value,
            record.c.source_id.in_([i.canonical.source_id for i in items]),
        )
        .order_by(record.c.source_id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {
        row.source_id: _Known(row.id, row.current_version, row.content_hash, row.withdrawn_at is not None)
        for row in conn.execute(query)
    }


def _write_versions(conn: Connection, fresh: Sequence[tuple[Stored, Incoming]], now: dt.datetime) -> None:
    if not fresh:
        return
    rows = [
        {
            "record_id": s.record_id,
            "version": s.version,
            "content_hash": i.canonical.content_hash,
            "content": i.canonical.content,
            "submitted": i.submitted,
            "received_at": now,
        }
        for s, i in fresh
    ]
    if conn.dialect.name == "postgresql" and len(rows) > 1:
        # content and submitted go in as the very text orjson makes of them, as the engine would store them
        keys = ("record_id", "version", "content_hash", "content", "submitted")
        conn.execute(_VERSIONS, {"now": now, "rows": orjson.dumps([[r[k] for k in keys] for r in rows]).decode()})
    else:
        conn.execute(sa.insert(record_version), rows)


_VERSIONS = sa.text("""
INSERT INTO record_version (record_id, version, content_hash, content, submitted, received_at)
SELECT (e->>0)::bigint, (e->>1)::integer, e->>2, e->3, e->4, :now
FROM json_array_elements(CAST(:rows AS json)) AS e
""").bindparams(sa.bindparam("now", type_=record.c.created_at.type))


def _bump_records(updated: Sequence[tuple[Stored, Incoming]], conn: Connection, now: dt.datetime) -> None:
    if not updated:
        return
    conn.execute(
        sa.update(record)
        .where(record.c.id == sa.bindparam("rid"))
        .values(
            current_version=sa.bindparam("v"),
            content_hash=sa.bindparam("h"),
            department=sa.bindparam("dept"),
            decided_on=sa.bindparam("decided"),
            updated_at=now,
        ),
        [
            {
                "rid": s.record_id,
                "v": s.version,
                "h": i.canonical.content_hash,
                "dept": i.canonical.record.department,
                "decided": i.canonical.record.decided_on,
            }
            for s, i in updated
        ],
    )
    conn.execute(
        sa.update(delivery)
        .where(
            delivery.c.record_id.in_([s.record_id for s, _ in updated]),
            delivery.c.operation == Operation.PUBLISH.value,
            delivery.c.state.in_([s.value for s in REPLACEABLE]),
        )
        .values(state=DeliveryState.SUPERSEDED.value, updated_at=now)
    )


def _queue_deliveries(
    conn: Connection,
    kind: Kind,
    fresh: Sequence[tuple[Stored, Incoming]],
    targets: Sequence[str],
    now: dt.datetime,
    due: DueDates,
) -> None:
    rows = []
    for stored, item in fresh:
        dues = due(kind, item.canonical.record.decided_on, targets)
        for target in targets:
            rows.append(
                {
                    "record_id": stored.record_id,
                    "version": stored.version,
                    "target": target,
                    "operation": Operation.PUBLISH.value,
                    "state": DeliveryState.PENDING.value,
                    "idempotency_key": idempotency_key(stored.record_id, stored.version, Operation.PUBLISH, target),
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                    **_due_columns(dues.get(target)),
                }
            )
            stored.deliveries.append({"target": target, "state": DeliveryState.PENDING.value})
    if rows and conn.dialect.name == "postgresql" and len(rows) > 1:
        keys = ("record_id", "version", "target", "idempotency_key", "due_date", "due_by", "due_date_basis")
        conn.execute(_DELIVERIES, {"now": now, "rows": orjson.dumps([[r[k] for k in keys] for r in rows]).decode()})
    elif rows:
        conn.execute(sa.insert(delivery), rows)


# A batch's rows on PostgreSQL: one statement over one JSON document (encoded by orjson in one call) instead of
# one execution per row (2,000 deliveries for a batch of 500 records to four targets), or of a text array whose
# every JSON quote the driver would have to escape.
_DELIVERIES = sa.text("""
INSERT INTO delivery (record_id, version, target, operation, state, idempotency_key, attempts, next_attempt_at,
                      created_at, updated_at, due_date, due_by, due_date_basis)
SELECT (e->>0)::bigint, (e->>1)::integer, e->>2, 'publish', 'pending', e->>3, 0, :now, :now, :now,
       (e->>4)::date, (e->>5)::timestamptz, e->>6
FROM json_array_elements(CAST(:rows AS json)) AS e
""").bindparams(sa.bindparam("now", type_=record.c.created_at.type))


def _current_deliveries(conn: Connection, stored: Sequence[Stored]) -> None:
    """Fill in the publish deliveries of the current version of records that did not change."""
    if not stored:
        return
    by_id: Mapping[int, Stored] = {s.record_id: s for s in stored}
    rows = conn.execute(
        sa.select(delivery.c.record_id, delivery.c.version, delivery.c.target, delivery.c.state)
        .where(delivery.c.record_id.in_(list(by_id)), delivery.c.operation == Operation.PUBLISH.value)
        .order_by(delivery.c.id)
    )
    for row in rows:
        owner = by_id[row.record_id]
        if row.version == owner.version:
            owner.deliveries.append({"target": row.target, "state": row.state})


def _audit_detail(version: int, origin: str) -> dict[str, Any]:
    return {"version": version} if origin == "api" else {"version": version, "origin": origin}


def _audit(conn: Connection, kind: Kind, actor: Actor, stored: Any, now: dt.datetime, origin: str) -> None:
    rows = [
        {
            "at": now,
            "actor": actor.name,
            "role": actor.role,
            "action": f"ingest.{s.status}" if s.status != "withdrawn" else "ingest.refused",
            "kind": kind.value,
            "source_id": s.source_id,
            "record_id": s.record_id,
            "detail": _audit_detail(s.version, origin),
        }
        for s in stored
    ]
    audit.append(conn, rows)
