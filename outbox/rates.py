"""公示率 in SQL: how each (record, target) stands on a day, counted by target, kind and department.

The standing of a (record, target) pair, exactly as ``schemas.deadlines.standing`` defines it:

* its due date is the current version's; its publication is the first business acceptance of any version
  (a correction of a record that was already public does not make it unpublished);
* ``on_time`` published before the end of the due date (``due_by``, Asia/Shanghai); ``late`` after it;
* ``not_applicable`` withdrawn before the due date ended without having been published;
* ``overdue`` unpublished and the day is after the due date; ``pending`` unpublished and not yet due;
* ``unknown`` no due date (the calendar did not know the year when it was stored).

Only the record kinds are judged: articles (典型案例, 工作动态) have no deadline and are the plan's quota items, so
they never enter a 公示率, its counts or the at-risk view (``RECORD_KINDS`` below).

Apart from the standings, ``provisional`` counts the pairs whose due date was counted on a provisional calendar
(the year's 放假安排 not published yet): they are judged like the others and shown as provisional.

Everything is aggregated by the database (one grouped query over the records decided in the period, through the
``decided_on`` index and the ``(record_id, target)`` index of ``delivery``); Python only adds up the few dozen
grouped rows into totals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox.states import DeliveryState, Operation
from outbox.tables import UNPUBLISHED, delivery, record
from schemas.enums import RECORD_KINDS

JUDGED = [k.value for k in RECORD_KINDS]  # the kinds with deadlines; articles are counted by the quotas instead
STANDINGS = ("on_time", "late", "overdue", "pending", "not_applicable", "unknown")


@dataclass(slots=True)
class Counts:
    """How many (record, target) pairs stand where; ``rate`` is 公示率, None when nothing is counted."""

    on_time: int = 0
    late: int = 0
    overdue: int = 0
    pending: int = 0
    not_applicable: int = 0
    unknown: int = 0
    provisional: int = 0  # of all the above, those whose due date is provisional

    @property
    def counted(self) -> int:
        return self.on_time + self.late + self.overdue

    @property
    def rate(self) -> float | None:
        return None if self.counted == 0 else self.on_time / self.counted

    def add(self, other: Counts) -> None:
        for name in (*STANDINGS, "provisional"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        standings = {name: getattr(self, name) for name in STANDINGS}
        return {**standings, "counted": self.counted, "rate": self.rate, "provisional": self.provisional}


@dataclass(frozen=True, slots=True)
class Group:
    target: str
    kind: str
    department: str
    counts: Counts = field(compare=False)


def standing_as_of(as_of: dt.date | None, as_of_end: dt.datetime | None, per: Any) -> Any:
    """The standing as of a day; as of no day (None, None): as it stands once every due date has passed."""
    withdrawn = [per.c.withdrawn_at.is_not(None), per.c.withdrawn_at < per.c.due_by]
    return sa.case(
        (per.c.due_date.is_(None), "unknown"),
        (per.c.first_published.is_not(None), sa.case((per.c.first_published < per.c.due_by, "on_time"), else_="late")),
        (
            sa.and_(*withdrawn, *([] if as_of_end is None else [per.c.withdrawn_at < as_of_end])),
            "not_applicable",
        ),
        (sa.true() if as_of is None else per.c.due_date < as_of, "overdue"),
        else_="pending",
    )


def per_pair(
    decided_from: dt.date,
    decided_to: dt.date,
    as_of_end: dt.datetime | None,
    *,
    ranges: Sequence[tuple[dt.date, dt.date]] = (),
    extra: Sequence[Any] = (),
    probe: bool = False,
) -> Any:
    """One row per (record, target) of the records decided in [decided_from, decided_to] (and, when ``ranges`` are
    given, in one of them); publications up to ``as_of_end``, or all of them when it is None. ``extra``: more
    columns of ``record`` (functionally dependent on its id, so they need no grouping).

    ``probe`` (PostgreSQL only): reach each record's deliveries through ``ix_delivery_record`` with a LATERAL
    subquery, a few index probes per record. For the month or two a report recounts that is several times cheaper
    than the hash join over the whole of ``delivery`` the planner picks with its default costs (measured over a
    million deliveries), and it stays so whatever the statistics say. ``settled.fill``, which counts whole months
    once, keeps the plain join. SQLite always probes the index this way."""
    current = delivery.c.version == record.c.current_version
    published = delivery.c.state == DeliveryState.PUBLISHED.value
    if as_of_end is not None:
        published = sa.and_(published, delivery.c.published_at < as_of_end)
    within = [sa.or_(*(record.c.decided_on.between(a, b) for a, b in ranges))] if ranges else []
    chosen = [
        record.c.decided_on >= decided_from,
        record.c.decided_on <= decided_to,
        record.c.kind.in_(JUDGED),
        *within,
    ]
    aggregates = [
        sa.func.max(sa.case((current, delivery.c.due_date))).label("due_date"),
        sa.func.max(sa.case((current, delivery.c.due_by))).label("due_by"),
        sa.func.max(sa.case((current, delivery.c.due_date_basis))).label("due_date_basis"),
        sa.func.min(sa.case((published, delivery.c.published_at))).label("first_published"),
    ]
    of_record = [record.c.id.label("record_id"), record.c.kind, record.c.department, record.c.decided_on]
    if probe:
        pair = (
            sa.select(delivery.c.target, *aggregates)
            .where(delivery.c.record_id == record.c.id, delivery.c.operation == Operation.PUBLISH.value)
            .group_by(delivery.c.target)
            .lateral("pair")
        )
        return (
            sa.select(*of_record, record.c.withdrawn_at, pair.c.target, *extra, *(pair.c[a.name] for a in aggregates))
            .select_from(record.join(pair, sa.true()))
            .where(*chosen)
            .subquery("per")
        )
    return (
        sa.select(*of_record, record.c.withdrawn_at, delivery.c.target, *extra, *aggregates)
        .join(delivery, delivery.c.record_id == record.c.id)
        .where(*chosen, delivery.c.operation == Operation.PUBLISH.value)
        # record.id is the primary key: its other columns are functionally dependent (PostgreSQL and SQLite
        # both accept them ungrouped), and a two-column group key sorts faster than six.
        .group_by(record.c.id, delivery.c.target)
        .subquery("per")
    )


def sums(standing: Any, per: Any) -> list[Any]:
    provisional = sa.func.sum(sa.case((per.c.due_date_basis == "provisional", 1), else_=0)).label("provisional")
    return [*(sa.func.sum(sa.case((standing == name, 1), else_=0)).label(name) for name in STANDINGS), provisional]


def _counts(row: Any) -> Counts:
    return Counts(**{name: int(getattr(row, name) or 0) for name in (*STANDINGS, "provisional")})


def _probes(conn: Connection) -> bool:
    """Whether ``per_pair`` should probe ``delivery`` record by record (see there): on PostgreSQL."""
    return conn.dialect.name == "postgresql"


def _for_a_month(conn: Connection) -> None:
    """PostgreSQL settings for this transaction's counts over a month or two of pairs (about 100,000 rows at a
    million deliveries): room to hash and sort them in memory instead of spilling to disk at the default 4 MB,
    and no JIT, whose compiling (tens of milliseconds) costs more than it saves on so few rows."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT set_config('work_mem', '64MB', true), set_config('jit', 'off', true)"))


def standings(
    conn: Connection, *, decided_from: dt.date, decided_to: dt.date, as_of: dt.date, as_of_end: dt.datetime
) -> list[Group]:
    """Counts per (target, kind, department) for the records decided in the period, as they stood on ``as_of``."""
    _for_a_month(conn)
    per = per_pair(decided_from, decided_to, as_of_end, probe=_probes(conn))
    standing = standing_as_of(as_of, as_of_end, per)
    rows = conn.execute(
        sa.select(per.c.target, per.c.kind, per.c.department, *sums(standing, per))
        .group_by(per.c.target, per.c.kind, per.c.department)
        .order_by(per.c.department, per.c.kind, per.c.target)
    )
    return [Group(r.target, r.kind, r.department, _counts(r)) for r in rows]


def month_of(conn: Connection, column: Any) -> tuple[Any, Any]:
    """The month of a date column as a key to group by and its ``YYYY-MM`` label. On PostgreSQL the key is the
    truncated date and only the grouped keys are formatted: ``to_char`` on each of a hundred thousand pairs
    costs more than the rest of the grouping."""
    if conn.dialect.name == "postgresql":
        key = sa.func.date_trunc(sa.literal_column("'month'"), sa.cast(column, sa.DateTime()))
        return key, sa.func.to_char(key, sa.literal_column("'YYYY-MM'"))
    key = sa.func.strftime("%Y-%m", column)
    return key, key


def _by_month(rows: Iterable[Any]) -> dict[str, list[Group]]:
    """Grouped rows (with their ``month``) by month, each month's groups by department, kind and target."""
    out: dict[str, list[Group]] = {}
    for r in sorted(rows, key=lambda r: (r.month, r.department, r.kind, r.target)):
        out.setdefault(r.month, []).append(Group(r.target, r.kind, r.department, _counts(r)))
    return out


def monthly_groups(
    conn: Connection,
    *,
    decided_from: dt.date,
    decided_to: dt.date,
    as_of: dt.date,
    as_of_end: dt.datetime,
    ranges: Sequence[tuple[dt.date, dt.date]] = (),
) -> dict[str, list[Group]]:
    """Counts per month of decision and (target, kind, department), in one pass: a report's trend and, summed over
    its months, the period's own standings."""
    _for_a_month(conn)
    per = per_pair(decided_from, decided_to, as_of_end, ranges=ranges, probe=_probes(conn))
    key, month = month_of(conn, per.c.decided_on)
    rows = conn.execute(
        sa.select(
            month.label("month"),
            per.c.target,
            per.c.kind,
            per.c.department,
            *sums(standing_as_of(as_of, as_of_end, per), per),
        ).group_by(key, per.c.target, per.c.kind, per.c.department)
    )
    return _by_month(rows)


# The detail sheets list pairs by due date, then record and target. Every standing but ``unknown`` has a due date,
# and ``unknown`` pairs are never listed (``_listable``).
LISTED_ORDER = itemgetter("due_date", "record_id", "target")
LISTABLE = frozenset(STANDINGS) - {"unknown"}


def _listable(which: Sequence[str]) -> list[str]:
    if not set(which) <= LISTABLE:
        raise ValueError(f"only standings with a due date can be listed, not {sorted(set(which) - LISTABLE)}")
    return list(which)


# The columns of a listed pair, in the order ``_by_standing`` reads them (its standing comes last).
LISTED = (
    "record_id",
    "source_id",
    "kind",
    "department",
    "target",
    "decided_on",
    "due_date",
    "due_date_basis",
    "first_published",
)


def _by_standing(which: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, list[dict[str, Any]]]:
    """Listed pairs (``LISTED``'s columns, then the standing) by standing, each list in ``LISTED_ORDER``."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in which}
    for record_id, source_id, kind, department, target, decided_on, due_date, basis, published, standing in rows:
        out[standing].append(
            {
                "record_id": record_id,
                "source_id": source_id,
                "kind": kind,
                "department": department,
                "target": target,
                "decided_on": decided_on,
                "due_date": due_date,
                "due_date_basis": basis,
                "published_at": published,
            }
        )
    for pairs in out.values():
        pairs.sort(key=LISTED_ORDER)
    return out


def listed(
    conn: Connection,
    *,
    decided_from: dt.date,
    decided_to: dt.date,
    as_of: dt.date,
    as_of_end: dt.datetime,
    which: Sequence[str],
) -> dict[str, list[dict[str, Any]]]:
    """The (record, target) pairs in the given standings (``overdue``, ``late``), for the report's detail sheets."""
    # source_id rides along in the grouped rows (no second join back to ``record``); only the columns the
    # sheets show are selected, so tens of thousands of rows convert no timestamp they do not print.
    _for_a_month(conn)
    per = per_pair(decided_from, decided_to, as_of_end, extra=[record.c.source_id], probe=_probes(conn))
    standing = standing_as_of(as_of, as_of_end, per).label("standing")
    inner = sa.select(*(per.c[name] for name in LISTED), standing).subquery("s")
    return _by_standing(which, conn.execute(sa.select(inner).where(inner.c.standing.in_(_listable(which)))))


def monthly_and_listed(
    conn: Connection,
    *,
    decided_from: dt.date,
    decided_to: dt.date,
    as_of: dt.date,
    as_of_end: dt.datetime,
    ranges: Sequence[tuple[dt.date, dt.date]],
    listed_from: dt.date,
    listed_to: dt.date,
    which: Sequence[str],
) -> tuple[dict[str, list[Group]], dict[str, list[dict[str, Any]]]]:
    """``monthly_groups`` and ``listed`` (for the records decided in [listed_from, listed_to], which ``ranges`` must
    cover) from one pass over the pairs: a report's live months and its detail sheets read them once, not twice.

    One statement: the pairs with their standing in a common table expression (evaluated once where it is used
    twice), the counts grouped by month and the listed pairs as the two halves of a ``UNION ALL``, each half NULL
    where the other has values (typed NULLs, so both databases unify the columns). Python orders the listed
    pairs: the database would sort the halves' wide rows together."""
    _for_a_month(conn)
    per = per_pair(decided_from, decided_to, as_of_end, ranges=ranges, extra=[record.c.source_id], probe=_probes(conn))
    pairs = sa.select(per, standing_as_of(as_of, as_of_end, per).label("standing")).cte("pairs")

    def null(type_: Any) -> Any:
        return sa.cast(sa.null(), type_)

    counted = sums(pairs.c.standing, pairs)
    key, month = month_of(conn, pairs.c.decided_on)
    # part, month, the counts, then a listed pair's columns (``LISTED``, the standing)
    grouped = sa.select(
        sa.literal(0).label("part"),
        month.label("month"),
        *counted,
        null(sa.BigInteger()).label("record_id"),
        null(sa.String()).label("source_id"),
        pairs.c.kind,
        pairs.c.department,
        pairs.c.target,
        null(sa.Date()).label("decided_on"),
        null(sa.Date()).label("due_date"),
        null(sa.String()).label("due_date_basis"),
        null(pairs.c.first_published.type).label("first_published"),
        null(sa.String()).label("standing"),
    ).group_by(key, pairs.c.target, pairs.c.kind, pairs.c.department)
    shown = sa.select(
        sa.literal(1).label("part"),
        null(sa.String()).label("month"),
        *(null(sa.BigInteger()).label(c.name) for c in counted),
        *(pairs.c[name] for name in (*LISTED, "standing")),
    ).where(pairs.c.standing.in_(_listable(which)), pairs.c.decided_on >= listed_from, pairs.c.decided_on <= listed_to)
    rows = conn.execute(sa.union_all(grouped, shown)).all()  # one fetchall: tens of thousands of rows
    width = len(LISTED) + 1
    listed_pairs = _by_standing(which, (r[-width:] for r in rows if r.part == 1))
    return _by_month(r for r in rows if r.part == 0), listed_pairs


def record_counts(conn: Connection, *, decided_from: dt.date, decided_to: dt.date) -> dict[tuple[str, str], int]:
    """Records (not deliveries) decided in the period, per (department, kind): a reader's 记录数."""
    rows = conn.execute(
        sa.select(record.c.department, record.c.kind, sa.func.count().label("n"))
        .where(record.c.decided_on >= decided_from, record.c.decided_on <= decided_to, record.c.kind.in_(JUDGED))
        .group_by(record.c.department, record.c.kind)
    )
    return {(r.department, r.kind): int(r.n) for r in rows}


def at_risk(conn: Connection, *, due_by_date: dt.date, limit: int) -> list[dict[str, Any]]:
    """Unpublished publish deliveries due on or before ``due_by_date`` (overdue ones included), earliest first."""
    rows = conn.execute(
        sa.select(
            delivery.c.id,
            delivery.c.target,
            delivery.c.state,
            delivery.c.version,
            delivery.c.due_date,
            delivery.c.due_date_basis,
            delivery.c.attempts,
            delivery.c.last_code,
            delivery.c.last_message,
            record.c.kind,
            record.c.source_id,
            record.c.department,
            record.c.decided_on,
        )
        .join(record, record.c.id == delivery.c.record_id)
        .where(sa.text(UNPUBLISHED), delivery.c.due_date <= due_by_date, record.c.kind.in_(JUDGED))
        .order_by(delivery.c.due_date, delivery.c.id)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def missing_due_dates(conn: Connection) -> list[Any]:
    """Distinct (kind, decision date, target) of live publish deliveries still without a due date."""
    return list(
        conn.execute(
            sa.select(record.c.kind, record.c.decided_on, delivery.c.target)
            .join(record, record.c.id == delivery.c.record_id)
            .where(sa.text(UNPUBLISHED), delivery.c.due_date.is_(None), record.c.kind.in_(JUDGED))
            .distinct()
        )
    )


def fill_due_dates(conn: Connection, filled: Sequence[tuple[str, dt.date, str, dt.date, dt.datetime, str]]) -> int:
    """Store due dates computed for (kind, decided_on, target) triples; returns the deliveries updated."""
    total = 0
    for kind, decided_on, target, due_date, due_by, basis in filled:
        records = sa.select(record.c.id).where(record.c.kind == kind, record.c.decided_on == decided_on)
        result = conn.execute(
            sa.update(delivery)
            .where(
                delivery.c.target == target,
                delivery.c.due_date.is_(None),
                delivery.c.operation == Operation.PUBLISH.value,
                delivery.c.record_id.in_(records),
            )
            .values(due_date=due_date, due_by=due_by, due_date_basis=basis)
        )
        total += result.rowcount
    return total


def imported(conn: Connection, *, decided_from: dt.date, decided_to: dt.date) -> int:
    """Records decided in the period that came by ``credit-gateway import`` (the archive), not by the API."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(record)
            .where(record.c.decided_on >= decided_from, record.c.decided_on <= decided_to, record.c.origin == "import")
        ).scalar_one()
    )
