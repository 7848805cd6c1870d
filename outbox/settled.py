"""Settled months' 公示率 counts, kept in ``settled_standing`` so a report's 12-month trend reads them back
instead of recounting a million deliveries.

A month is stored counted as of "no day": every publication and withdrawal so far counts and every due date has
passed. Those counts equal the counts as of any day after the month's last due date whose end is after its last
publication and last withdrawal, so a report as of such a day reuses them (``cached``) and recounts the others.
A month is stored (``fill``) once a report found no pair of it pending, which is when its counts stop changing by
themselves; anything that changes them afterwards (a late publication, a new version, a withdrawal, an import of
an old decision, a due-date recompute) goes through ``record`` or ``delivery``, whose triggers (migration 0013)
delete the month's rows in the same transaction.

Several processes: on PostgreSQL a trigger takes a shared advisory lock on the month (class ``SETTLED_LOCK``,
key YYYYMM) before it deletes; ``fill`` takes it exclusively with a try-lock (it skips a month another
transaction is changing, never waits) and only then recounts, in a later statement, so under READ COMMITTED its
count sees every change committed before and no change can commit in between. SQLite serialises writers, and
``fill`` is one ``INSERT … SELECT`` in a write transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import rates
from outbox.tables import settled_standing

SETTLED_LOCK = 1667724148  # the advisory-lock class (int4) of the months' locks; the key is YYYYMM
COUNTED = (*rates.STANDINGS, "provisional")


def month_range(month: str) -> tuple[dt.date, dt.date]:
    """The first and last day of a ``YYYY-MM`` month."""
    first = dt.date.fromisoformat(f"{month}-01")
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def full_months(decided_from: dt.date, decided_to: dt.date) -> list[str]:
    """The months wholly inside [decided_from, decided_to]: only whole months are kept."""
    out: list[str] = []
    first = decided_from if decided_from.day == 1 else (decided_from + dt.timedelta(days=32)).replace(day=1)
    while True:
        month = first.strftime("%Y-%m")
        if month_range(month)[1] > decided_to:
            return out
        out.append(month)
        first = (first + dt.timedelta(days=32)).replace(day=1)


def edges(decided_from: dt.date, decided_to: dt.date, months: Sequence[str]) -> list[tuple[dt.date, dt.date]]:
    """The parts of [decided_from, decided_to] outside the whole ``months`` (the window's partial ends)."""
    if not months:
        return [(decided_from, decided_to)]
    first, last = month_range(months[0])[0], month_range(months[-1])[1]
    before = [(decided_from, first - dt.timedelta(days=1))] if decided_from < first else []
    return before + ([(last + dt.timedelta(days=1), decided_to)] if decided_to > last else [])


def cached(
    conn: Connection, months: Sequence[str], *, as_of: dt.date, as_of_end: dt.datetime
) -> dict[str, list[rates.Group]]:
    """The stored months among ``months`` whose counts hold as of ``as_of``; the others are left out."""
    if not months:
        return {}
    rows = conn.execute(
        sa.select(settled_standing)
        .where(settled_standing.c.month.in_(list(months)))
        .order_by(
            settled_standing.c.month,
            settled_standing.c.department,
            settled_standing.c.kind,
            settled_standing.c.target,
        )
    ).all()
    out: dict[str, list[rates.Group]] = {}
    stale: set[str] = set()
    for r in rows:
        if not _holds(r, as_of, as_of_end):
            stale.add(r.month)
        counts = rates.Counts(**{name: int(getattr(r, name)) for name in COUNTED})
        out.setdefault(r.month, []).append(rates.Group(r.target, r.kind, r.department, counts))
    return {month: groups for month, groups in out.items() if month not in stale}


def _holds(row: Any, as_of: dt.date, as_of_end: dt.datetime) -> bool:
    due, published, withdrawn = row.last_due_date, row.last_published_at, row.last_withdrawn_at
    return (
        (due is None or due < as_of)
        and (published is None or published < as_of_end)
        and (withdrawn is None or withdrawn < as_of_end)
    )


def settled(groups: Iterable[rates.Group]) -> bool:
    """Whether a month's counts as of a day have stopped changing by themselves: nothing pending."""
    return all(g.counts.pending == 0 for g in groups)


def fill(conn: Connection, months: Sequence[str]) -> list[str]:
    """Count ``months`` as of no day and store them (replacing what was there); returns the months stored."""
    if conn.dialect.name == "postgresql":
        lock = sa.text("SELECT pg_try_advisory_xact_lock(:cls, :key)")
        months = [
            m for m in months if conn.execute(lock, {"cls": SETTLED_LOCK, "key": int(m.replace("-", ""))}).scalar()
        ]
    if not months:
        return []
    conn.execute(sa.delete(settled_standing).where(settled_standing.c.month.in_(list(months))))
    ranges = [month_range(m) for m in months]
    per = rates.per_pair(ranges[0][0], max(b for _, b in ranges), None, ranges=ranges)
    key, month = rates.month_of(conn, per.c.decided_on)
    counted = sa.select(
        month.label("month"),
        per.c.target,
        per.c.kind,
        per.c.department,
        *rates.sums(rates.standing_as_of(None, None, per), per),
        sa.func.max(per.c.due_date),
        sa.func.max(per.c.first_published),
        sa.func.max(per.c.withdrawn_at),
    ).group_by(key, per.c.target, per.c.kind, per.c.department)
    columns = ["month", "target", "kind", "department", *COUNTED, "last_due_date", "last_published_at"]
    conn.execute(settled_standing.insert().from_select([*columns, "last_withdrawn_at"], counted))
    return list(months)
