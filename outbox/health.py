"""Target health in the database: one circuit breaker per target, shared by every process that talks to it.

Why here: with ``serve`` and several ``worker`` processes, a breaker kept in each process's memory lets every
process hammer a dead target on its own count, and the API process (which sends nothing) knows nothing. The row
is the breaker; the state machine is the pure ``after_exchange``; changes run in one transaction with the row
locked (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so a transition (closed → open, half-open →
closed) happens, and is logged, in exactly one process. The half-open probe is claimed with a conditional UPDATE
(``claim_probe``): of two processes that both see the open time run out, one gets the row and the other does not.
``leases.lease_due`` reads the same row, so no process leases (and so sends) for a target whose breaker is open,
half-open under another process's probe, or throttled, whatever its own cached view says.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from outbox.tables import target_health

Breaker = Literal["closed", "open", "half_open"]
ExchangeKind = Literal["ok", "throttled", "down"]


@dataclass(frozen=True)
class TargetHealth:
    target: str
    breaker: str = "closed"
    consecutive_failures: int = 0
    opened_at: dt.datetime | None = None
    down_since: dt.datetime | None = None
    probe_owner: str | None = None
    probe_until: dt.datetime | None = None
    held_until: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    last_failure_at: dt.datetime | None = None
    last_failure_code: str | None = None
    last_failure_message: str | None = None
    updated_at: dt.datetime | None = None


_COLUMNS = [f.name for f in fields(TargetHealth)]


@dataclass(frozen=True)
class Exchange:
    """What one exchange showed about the target: it answered (``ok``), asked us to wait, or was down."""

    kind: ExchangeKind
    retry_after: float | None = None
    code: str | None = None
    message: str | None = None


def after_exchange(health: TargetHealth, exchange: Exchange, *, now: dt.datetime, failures: int) -> TargetHealth:
    """The breaker's state machine: ``failures`` consecutive downs open it; a failed half-open probe reopens it;
    any answer closes it. A throttle is an answer (the target is up) that also holds every sender until its
    Retry-After. An exchange recorded while the breaker is already open leaves the open time alone."""
    held = health.held_until
    if exchange.retry_after:
        held = now + dt.timedelta(seconds=exchange.retry_after)
    code, message = (exchange.code or "")[:32] or None, (exchange.message or "")[:500] or None
    if exchange.kind != "down":
        closed = replace(
            health,
            breaker="closed",
            consecutive_failures=0,
            opened_at=None,
            down_since=None,
            probe_owner=None,
            probe_until=None,
            held_until=held,
            updated_at=now,
        )
        if exchange.kind == "throttled":
            return replace(closed, last_failure_at=now, last_failure_code=code, last_failure_message=message)
        return replace(closed, last_success_at=now)
    count = health.consecutive_failures + 1
    down = replace(
        health,
        consecutive_failures=count,
        held_until=held,
        updated_at=now,
        last_failure_at=now,
        last_failure_code=code,
        last_failure_message=message,
    )
    if health.breaker == "open":
        return down
    if health.breaker == "half_open" or count >= failures:
        return replace(
            down, breaker="open", opened_at=now, down_since=health.down_since or now, probe_owner=None, probe_until=None
        )
    return down


def _row(row: Any) -> TargetHealth:
    return TargetHealth(**{c: getattr(row, c) for c in _COLUMNS})


def read(conn: Connection) -> dict[str, TargetHealth]:
    return {r.target: _row(r) for r in conn.execute(sa.select(target_health))}


def change(
    conn: Connection, *, target: str, now: dt.datetime, step: Callable[[TargetHealth], TargetHealth]
) -> tuple[TargetHealth, TargetHealth]:
    """Apply ``step`` to the target's row with the row locked; (before, after)."""
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(target_health)
    conn.execute(
        insert.values(target=target, breaker="closed", consecutive_failures=0, updated_at=now).on_conflict_do_nothing(
            index_elements=["target"]
        )
    )
    query = sa.select(target_health).where(target_health.c.target == target)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    before = _row(conn.execute(query).one())
    after = step(before)
    if after != before:
        values = {c: getattr(after, c) for c in _COLUMNS if c != "target"}
        conn.execute(sa.update(target_health).where(target_health.c.target == target).values(**values))
    return before, after


def claim_probe(
    conn: Connection, *, target: str, owner: str, now: dt.datetime, open_for: dt.timedelta, until: dt.datetime
) -> TargetHealth | None:
    """Take the half-open probe if the breaker's open time has run out (or the last prober's claim has): the
    row as claimed, or None when another process has it or the breaker is not open."""
    h = target_health.c
    claimed = conn.execute(
        sa.update(target_health)
        .where(
            h.target == target,
            sa.or_(
                sa.and_(h.breaker == "open", h.opened_at <= now - open_for),
                sa.and_(h.breaker == "half_open", sa.or_(h.probe_until.is_(None), h.probe_until <= now)),
            ),
        )
        .values(breaker="half_open", probe_owner=owner, probe_until=until, updated_at=now)
        .returning(*target_health.c)
    ).one_or_none()
    return None if claimed is None else _row(claimed)


def holds(target: Any, owner: Any, now: Any) -> Any:
    """SQL: the target's breaker or throttle stops ``owner`` from leasing now (for ``leases.lease_due``); each
    argument a value or a bound parameter (the lease statements are built once)."""
    h = target_health.c
    return sa.exists().where(
        h.target == target,
        sa.or_(
            h.breaker == "open",
            sa.and_(h.breaker == "half_open", sa.or_(h.probe_owner.is_(None), h.probe_owner != owner)),
            h.held_until > now,
        ),
    )
