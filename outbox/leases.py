"""Leasing deliveries to workers, and settling what their attempts decided.

PostgreSQL: the due rows are picked with ``FOR UPDATE SKIP LOCKED``, so several worker processes lease disjoint
batches without waiting on each other; SQLite: the same statements inside ``BEGIN IMMEDIATE`` (one writer at a
time) with a conditional update. Either way a lease has an expiry: a worker killed mid-push loses nothing, the
reaper makes its rows due again and the next attempt carries the same idempotency key.

Order: a delivery is not leased while an earlier delivery of the same record to the same target is unresolved,
so version n+1 (or a withdrawal) never overtakes version n. Settling touches only rows still leased by the
settling worker, so a worker whose lease expired cannot clobber the work of the one that took over.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from outbox import health, notify
from outbox.lifecycle import AttemptResult, Settlement
from outbox.states import DUE, DeliveryState, Operation
from outbox.tables import UtcDateTime, attempt, delivery, exchange_excerpt, record, record_version

UNRESOLVED = (DeliveryState.PENDING, DeliveryState.RETRY_WAIT, DeliveryState.IN_FLIGHT, DeliveryState.AWAITING_RESULT)
# The "no earlier unresolved delivery" test names the states it is not in. Written as ``state IN (unresolved)``
# it matched the predicate of the partial index ``ix_delivery_open`` (target, created_at), and with stale
# statistics (a fresh table after a big ingest, or a big one whose statistics say nothing is open) the planner
# took that index for the inner side: every open row of the target rescanned for every due row, 30 s per lease
# at 10,000 records. Written this way only ``ix_delivery_record`` (record_id, target) serves it, and the due rows
# are read in the order of ``ix_delivery_due`` (target, next_attempt_at, id), so a lease stops at its limit:
# 0.5 ms for 200 of 20,000 due rows, whatever the statistics say (EXPLAIN ANALYZE, migration 0014).
RESOLVED = tuple(s.value for s in DeliveryState if s not in UNRESOLVED)


def _id_array(ids: Sequence[int]) -> str:
    """Ids as one PostgreSQL array literal: psycopg dumps a list element by element in Python (170 µs for 200)."""
    return "{" + ",".join(map(str, ids)) + "}"


def _ids_param(name: str, postgres: bool) -> Any:
    """A list of ids as one parameter: an array literal cast on PostgreSQL (``_id_array``), expanded on SQLite."""
    if postgres:  # untyped: typed as text, the cast would run again for every row the plan reads (array_in)
        return sa.cast(sa.bindparam(name), postgresql.ARRAY(sa.BigInteger()))
    return sa.bindparam(name, expanding=True)


@dataclass(frozen=True)
class Leased:
    """A delivery leased to a worker, with what it needs to build the item."""

    id: int
    record_id: int
    version: int
    operation: str
    key: str
    attempts: int
    created_at: dt.datetime
    kind: str
    content: dict[str, Any]
    withdraw_reason: str | None
    receipt_id: str | None


def _blocked_by_earlier() -> Any:
    earlier = delivery.alias("earlier")
    return sa.exists().where(
        earlier.c.record_id == delivery.c.record_id,
        earlier.c.target == delivery.c.target,
        earlier.c.id < delivery.c.id,
        earlier.c.state.not_in(RESOLVED),
    )


_NOW = sa.bindparam("now", type_=UtcDateTime())
_OWNER = sa.bindparam("owner", type_=sa.String())
_TARGET = sa.bindparam("lane", type_=sa.String())  # not "target": an update would take that as a new value
_LIMIT = sa.bindparam("limit", type_=sa.Integer())
_EXPIRES = sa.bindparam("expires", type_=UtcDateTime())
_DUE_STATES = [s.value for s in DUE]

# What a leased row carries to the worker: its delivery, its record's kind and the version's content.
_LEASED_COLUMNS = (
    delivery.c.id,
    delivery.c.record_id,
    delivery.c.version,
    delivery.c.operation,
    delivery.c.idempotency_key,
    delivery.c.attempts,
    sa.func.coalesce(delivery.c.retry_since, delivery.c.created_at).label("created_at"),  # the age budget
    delivery.c.receipt_id,
)


@dataclass(frozen=True)
class _Statements:
    """A dialect's lease statements, built once with bound parameters: building them per lease (the anti-join's
    alias, the breaker's subquery, SQLAlchemy's cache key for each) was a third of a lease's interpreter time."""

    urgent: Any  # the at-risk due rows' ids, deadline first
    rest: Any  # the other due rows' ids, in next_attempt_at order
    take: Any  # lease the chosen ids and load what the worker needs (PostgreSQL: one statement)
    load: Any  # SQLite: what ``take`` leased
    awaiting: Any  # SQLite: the due business results' ids (two-stage platforms)
    hold: Any  # lease those for asking (PostgreSQL: pick, lease and load them in one statement)


def _statements(postgres: bool) -> _Statements:
    def candidates(*extra: Any) -> Any:
        query = sa.select(delivery.c.id).where(
            delivery.c.target == _TARGET,
            delivery.c.state.in_(_DUE_STATES),
            delivery.c.next_attempt_at <= _NOW,
            ~_blocked_by_earlier(),
            ~health.holds(_TARGET, _OWNER, _NOW),  # the shared breaker or throttle: nothing leased, nothing sent
            *extra,
        )
        return query.with_for_update(skip_locked=True, of=delivery) if postgres else query

    urgent = (
        candidates(
            delivery.c.operation == Operation.PUBLISH.value,
            delivery.c.due_date <= sa.bindparam("urgent_by", type_=sa.Date()),
        )
        .order_by(delivery.c.due_date, delivery.c.id)
        .limit(_LIMIT)
    )
    rest = (
        candidates(sa.not_(_id_in("exclude", postgres)))
        .order_by(delivery.c.next_attempt_at, delivery.c.id)
        .limit(_LIMIT)
    )
    # On PostgreSQL the chosen rows are locked (FOR UPDATE) in this transaction, still due: the update names them
    # by id alone. A state test there lets stale statistics (a fresh table after a big ingest says few rows are
    # due) pick ix_delivery_due and re-read every due row of every target for each lease: O(backlog) per batch.
    take = (
        sa.update(delivery)
        .where(_id_in("ids", postgres))
        .where(delivery.c.state.in_(_DUE_STATES) if not postgres else sa.true())
        .values(
            state=DeliveryState.IN_FLIGHT.value,
            lease_owner=_OWNER,
            lease_expires_at=_EXPIRES,
            attempts=delivery.c.attempts + 1,
            updated_at=_NOW,
        )
    )
    awaiting = (
        sa.select(delivery.c.id)
        .where(
            delivery.c.target == _TARGET,
            delivery.c.state == DeliveryState.AWAITING_RESULT.value,
            delivery.c.next_attempt_at <= _NOW,
            sa.or_(delivery.c.lease_expires_at.is_(None), delivery.c.lease_expires_at < _NOW),
        )
        .order_by(delivery.c.next_attempt_at, delivery.c.id)
        .limit(_LIMIT)
    )
    hold = (
        sa.update(delivery)
        .where(_id_in("ids", postgres))
        .values(lease_owner=_OWNER, lease_expires_at=_EXPIRES, updated_at=_NOW)
    )
    if not postgres:
        load = _with_content(sa.select(*_LEASED_COLUMNS).where(_id_in("ids", postgres)).subquery("leased"))
        return _Statements(urgent, rest, take.returning(delivery.c.id), load, awaiting, hold)
    # PostgreSQL: the update returns the leased rows and the same statement joins their content: one round trip
    return _Statements(
        urgent,
        rest,
        _with_content(take.returning(*_LEASED_COLUMNS).cte("leased")),
        None,
        None,
        _hold_awaiting_postgres(awaiting),
    )


def _hold_awaiting_postgres(awaiting: Any) -> Any:
    """Pick, lease and load the due business results in one statement, so that an empty poll (most of them, every
    ``poll_interval_seconds`` per two-stage target and worker) is one round trip in autocommit. The picked ids go
    to the update as one array (an init plan), which only the primary key serves."""
    picked = awaiting.with_for_update(skip_locked=True).cte("picked")
    hold = (
        sa.update(delivery)
        .where(delivery.c.id == sa.any_(sa.func.array(sa.select(picked.c.id).scalar_subquery())))
        .values(lease_owner=_OWNER, lease_expires_at=_EXPIRES, updated_at=_NOW)
    )
    return _with_content(hold.returning(*_LEASED_COLUMNS).cte("leased"))


def _id_in(name: str, postgres: bool) -> Any:
    """The delivery's id is one of the list given as parameter ``name`` (``_ids_param``)."""
    if postgres:
        return delivery.c.id == sa.any_(_ids_param(name, True))
    return delivery.c.id.in_(_ids_param(name, False))


def _with_content(leased: Any) -> Any:
    return (
        sa.select(leased, record.c.kind, record.c.withdraw_reason, record_version.c.content)
        .join(record, record.c.id == leased.c.record_id)
        .join(
            record_version,
            sa.and_(record_version.c.record_id == leased.c.record_id, record_version.c.version == leased.c.version),
        )
        .order_by(leased.c.id)
    )


_STATEMENTS = {"postgresql": _statements(postgres=True), "sqlite": _statements(postgres=False)}


def lease_due(
    conn: Connection,
    *,
    target: str,
    owner: str,
    limit: int,
    now: dt.datetime,
    lease_for: dt.timedelta,
    urgent_by: dt.date | None = None,
) -> list[Leased]:
    """Lease up to ``limit`` due deliveries of ``target`` (pending or retry_wait, next_attempt_at reached).

    Deliveries whose deadline falls on or before ``urgent_by`` (at risk, or overdue) go first, earliest deadline
    first, through the small partial index of unpublished deadlines; the rest of the batch is filled in
    ``next_attempt_at`` order. The rows are picked ``FOR UPDATE SKIP LOCKED`` and then leased by id. Nothing is
    leased while the target's shared breaker is open, its half-open probe belongs to another owner, or it asked us
    to wait (``outbox.health``).
    """
    postgres = conn.dialect.name == "postgresql"
    statements = _STATEMENTS[conn.dialect.name]
    asked = {"lane": target, "owner": owner, "now": now, "limit": limit}
    ids: list[int] = []
    if urgent_by is not None:
        ids = list(conn.execute(statements.urgent, asked | {"urgent_by": urgent_by}).scalars())
    if len(ids) < limit:
        exclude = _id_array(ids) if postgres else ids
        ids += conn.execute(statements.rest, asked | {"limit": limit - len(ids), "exclude": exclude}).scalars()
    if not ids:
        return []
    lease = {"owner": owner, "now": now, "expires": now + lease_for}
    if postgres:
        return _leased(conn.execute(statements.take, lease | {"ids": _id_array(ids)}))
    taken = conn.execute(statements.take, lease | {"ids": ids}).scalars().all()
    return _leased(conn.execute(statements.load, {"ids": sorted(taken)})) if taken else []


def lease_awaiting(
    conn: Connection, *, target: str, owner: str, limit: int, now: dt.datetime, lease_for: dt.timedelta
) -> list[Leased]:
    """Lease deliveries whose business result is due to be asked for (two-stage platforms). On PostgreSQL one
    statement (``_hold_awaiting_postgres``): the store runs it in autocommit."""
    statements = _STATEMENTS[conn.dialect.name]
    asked = {"lane": target, "owner": owner, "now": now, "limit": limit, "expires": now + lease_for}
    if conn.dialect.name == "postgresql":
        return _leased(conn.execute(statements.hold, asked))
    ids = list(conn.execute(statements.awaiting, asked).scalars())
    if not ids:
        return []
    conn.execute(statements.hold, asked | {"ids": ids})
    return _leased(conn.execute(statements.load, {"ids": ids}))


def _leased(rows: Any) -> list[Leased]:
    return [
        Leased(
            r.id,
            r.record_id,
            r.version,
            r.operation,
            r.idempotency_key,
            r.attempts,
            r.created_at,
            r.kind,
            r.content,
            r.withdraw_reason,
            r.receipt_id,
        )
        for r in rows
    ]


def settle(
    conn: Connection,
    *,
    owner: str,
    decided: Sequence[tuple[Leased, Settlement, AttemptResult]],
    now: dt.datetime,
    duration_ms: int,
) -> int:
    """Write each decision and its attempt row; rows no longer leased by ``owner`` are left alone."""
    if not decided:
        return 0
    rows = [
        {
            "did": leased.id,
            "new_state": d.state.value,
            "next_at": d.next_attempt_at,
            "published": d.published_at,
            "receipt": d.receipt_id,
            "code": d.code,
            "message": (d.message or "")[:2000] or None,
        }
        for leased, d, _ in decided
    ]
    if conn.dialect.name == "postgresql":
        settled = _settle_postgres(conn, owner, rows, now)
    else:
        settled = _settle_sqlite(conn, owner, rows, now)
    exchanges, refs = _exchanges([r for _, _, r in decided])
    results = [
        (leased.id, r.result.value, r.code, (r.message or "")[:2000] or None, ref)
        for (leased, _, r), ref in zip(decided, refs, strict=True)
    ]
    if conn.dialect.name == "postgresql":
        attempts = [{"did": i, "outcome": o, "code": c, "message": m, "ref": ref} for i, o, c, m, ref in results]
        conn.execute(
            _ATTEMPTS_POSTGRES,
            {
                "at": now,
                "duration_ms": duration_ms,
                "exchanges": orjson.dumps(exchanges).decode(),
                "attempts": orjson.dumps(attempts).decode(),
            },
        )
    else:
        insert = sa.insert(exchange_excerpt).returning(exchange_excerpt.c.id)
        stored = [conn.execute(insert.values(at=now, request=q, reply=a)).scalar_one() for q, a in exchanges]
        conn.execute(
            sa.insert(attempt),
            [
                {
                    "delivery_id": i,
                    "at": now,
                    "duration_ms": duration_ms,
                    "outcome": o,
                    "code": c,
                    "message": m,
                    "excerpt_id": None if ref is None else stored[ref - 1],
                }
                for i, o, c, m, ref in results
            ],
        )
    notify.notify(conn, [str(settled)], notify.SETTLED)
    return settled


def _exchanges(results: Sequence[AttemptResult]) -> tuple[list[tuple[str | None, str | None]], list[int | None]]:
    """The distinct excerpts of a batch, and for each result the 1-based position of its own (None: it has none).

    The items of one exchange carry the same excerpt objects, so a batch sent in one request stores one row."""
    positions: dict[tuple[str | None, str | None], int] = {}
    refs: list[int | None] = []
    for r in results:
        if r.request_excerpt is None and r.reply_excerpt is None:
            refs.append(None)
            continue
        refs.append(positions.setdefault((r.request_excerpt, r.reply_excerpt), len(positions) + 1))
    return list(positions), refs


_LEASED = (DeliveryState.IN_FLIGHT.value, DeliveryState.AWAITING_RESULT.value)


_SETTLE_POSTGRES = sa.text("""
UPDATE delivery SET state = d.new_state, next_attempt_at = coalesce(d.next_at, delivery.next_attempt_at),
       published_at = d.published, receipt_id = coalesce(d.receipt, delivery.receipt_id), last_code = d.code,
       last_message = d.message, lease_owner = NULL, lease_expires_at = NULL, updated_at = :now
FROM json_to_recordset(CAST(:rows AS json))
     AS d(did bigint, new_state text, next_at timestamptz, published timestamptz, receipt text, code text,
          message text)
WHERE delivery.id = d.did AND delivery.id = ANY(CAST(:ids AS bigint[]))
  AND delivery.lease_owner = :owner AND coalesce(delivery.state IN ('in_flight', 'awaiting_result'), false)
RETURNING delivery.id
""").bindparams(sa.bindparam("now", type_=delivery.c.updated_at.type))

# One round trip: the exchanges get their ids from the sequence (the CTE is evaluated once, it is volatile), and
# each attempt finds its exchange by position (``ref``, 1-based; NULL for an attempt without an excerpt).
_ATTEMPTS_POSTGRES = sa.text("""
WITH e AS (
    SELECT nextval(pg_get_serial_sequence('exchange_excerpt', 'id')) AS id, x.pair ->> 0 AS request,
           x.pair ->> 1 AS reply, x.n
    FROM json_array_elements(CAST(:exchanges AS json)) WITH ORDINALITY AS x(pair, n)
), stored AS (
    INSERT INTO exchange_excerpt (id, at, request, reply) SELECT e.id, :at, e.request, e.reply FROM e
)
INSERT INTO attempt (delivery_id, at, duration_ms, outcome, code, message, excerpt_id)
SELECT a.did, :at, :duration_ms, a.outcome, a.code, a.message, e.id
FROM json_to_recordset(CAST(:attempts AS json)) AS a(did bigint, outcome text, code text, message text, ref bigint)
LEFT JOIN e ON e.n = a.ref
""").bindparams(sa.bindparam("at", type_=delivery.c.updated_at.type))


def _settle_postgres(conn: Connection, owner: str, rows: list[dict[str, Any]], now: dt.datetime) -> int:
    """Constant SQL over one JSON text of the batch's rows: one round trip per batch, a statement that stays
    prepared, and values written by orjson in C (psycopg dumps an array element by element in Python: seven
    arrays of 200 were 30% of a lease-and-settle loop's interpreter time).

    Statistics are often stale here (a fresh table after a big ingest, or a big one whose statistics say nothing
    is open), and the plan must not depend on them:
    - the rows are found by primary key (``id = ANY(:ids)``), and the state test is wrapped in ``coalesce`` (state
      is never NULL) so that it implies no partial index's predicate: written plainly, it let the planner take
      ``ix_delivery_open`` as a few rows and read every open delivery of every target for each batch (10,000 rows
      for a batch of 200 early in a drain of 20,000 records; four seconds of PostgreSQL's CPU over the drain);
    - ``enable_nestloop`` off for this transaction only makes it hash the batch's rows: with the leased rows
      estimated as one, a nested loop read the batch's rows once for each of them (40,000 join-filter checks for
      200; 50-300 ms for 500 before the rows were found by key).
    """
    conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
    ids = _id_array([r["did"] for r in rows])
    return len(
        conn.execute(
            _SETTLE_POSTGRES, {"rows": orjson.dumps(rows).decode(), "ids": ids, "owner": owner, "now": now}
        ).all()
    )


def _settle_sqlite(conn: Connection, owner: str, rows: list[dict[str, Any]], now: dt.datetime) -> int:
    """SQLite runs in-process, so a statement per row costs no round trip."""
    statement = (
        sa.update(delivery)
        .where(delivery.c.id == sa.bindparam("did"), delivery.c.lease_owner == owner, delivery.c.state.in_(_LEASED))
        .values(
            state=sa.bindparam("new_state"),
            next_attempt_at=sa.func.coalesce(
                sa.bindparam("next_at", type_=delivery.c.next_attempt_at.type), delivery.c.next_attempt_at
            ),
            published_at=sa.bindparam("published", type_=delivery.c.published_at.type),
            receipt_id=sa.func.coalesce(sa.bindparam("receipt", type_=sa.String()), delivery.c.receipt_id),
            last_code=sa.bindparam("code", type_=sa.String()),
            last_message=sa.bindparam("message", type_=sa.String()),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return sum(conn.execute(statement, row).rowcount for row in rows)


def _given(conn: Connection, ids: Sequence[int]) -> tuple[Any, dict[str, Any]]:
    """``delivery.id`` among ``ids``, and the parameter that carries them (``_id_in``)."""
    postgres = conn.dialect.name == "postgresql"
    return _id_in("ids", postgres), {"ids": _id_array(ids) if postgres else list(ids)}


def still_processing(
    conn: Connection, *, owner: str, ids: Sequence[int], next_at: dt.datetime, now: dt.datetime
) -> None:
    """The platform has no business result yet: ask again at ``next_at``."""
    if ids:
        among, given = _given(conn, ids)
        conn.execute(
            sa.update(delivery)
            .where(among, delivery.c.lease_owner == owner)
            .values(next_attempt_at=next_at, lease_owner=None, lease_expires_at=None, updated_at=now),
            given,
        )


def give_back(conn: Connection, *, owner: str, ids: Sequence[int], now: dt.datetime) -> int:
    """Leased deliveries that were never sent (the rest of a stalled batch, or requests a stopping worker did not
    make): due again in their old place in the queue (``next_attempt_at`` is kept, and was past when they were
    leased), with the attempt their lease counted taken back and no attempt written, so nobody gives up on an
    item, or reads its history, for tries that never happened."""
    if not ids:
        return 0
    among, given = _given(conn, ids)
    first = delivery.c.attempts <= 1
    return int(
        conn.execute(
            sa.update(delivery)
            .where(among, delivery.c.lease_owner == owner, delivery.c.state == DeliveryState.IN_FLIGHT.value)
            .values(
                state=sa.case((first, DeliveryState.PENDING.value), else_=DeliveryState.RETRY_WAIT.value),
                attempts=delivery.c.attempts - 1,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            ),
            given,
        ).rowcount
    )


def extend(conn: Connection, *, owner: str, ids: Sequence[int], until: dt.datetime) -> int:
    """Keep leases alive while their batch is still being sent (a heartbeat, so slow batches are not reaped)."""
    if not ids:
        return 0
    among, given = _given(conn, ids)
    return int(
        conn.execute(
            sa.update(delivery)
            .where(
                among,
                delivery.c.lease_owner == owner,
                delivery.c.state.in_([DeliveryState.IN_FLIGHT.value, DeliveryState.AWAITING_RESULT.value]),
            )
            .values(lease_expires_at=until),
            given,
        ).rowcount
    )


def reap(conn: Connection, *, now: dt.datetime) -> int:
    """In-flight deliveries whose lease expired (their worker died) become due again, with the same key."""
    return int(
        conn.execute(
            sa.update(delivery)
            .where(delivery.c.state == DeliveryState.IN_FLIGHT.value, delivery.c.lease_expires_at < now)
            .values(
                state=DeliveryState.RETRY_WAIT.value,
                next_attempt_at=now,
                lease_owner=None,
                lease_expires_at=None,
                last_code="lease_expired",
                last_message="the worker holding it stopped; retried with the same key",
                updated_at=now,
            )
        ).rowcount
    )
