"""Settled months kept in ``settled_standing``: a report that reuses them equals one that recounts everything,
after each kind of change that can alter a past month, on SQLite and PostgreSQL; a month being changed by an
open transaction elsewhere is not stored from a stale count (PostgreSQL, two sessions).

Every test seeds August–October 2026 (licences in three departments, some published on time, some late, some
never) and reads the October report as of 2026-11-25, whose trend holds August and September settled (every due
date passed) and October not (pairs still pending).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.reports.build import build_report
from gateway.settings import Settings
from outbox import rates, settled
from outbox.database import Database
from outbox.store import Store
from outbox.tables import delivery, record, settled_standing
from schemas import deadlines
from schemas.calendar import end_of_day
from schemas.enums import Kind, WithdrawReason
from schemas.periods import parse_period
from tests.conftest import NOW
from tests.contract.test_reports import SOURCE, at, licence_on, post, publish

AS_OF = dt.date(2026, 11, 25)
PERIOD = parse_period("2026-10")
SETTLED = ("2026-08", "2026-09")
DEPARTMENTS = ("行政审批科", "建工科", "房监科")


def seed(store: Store) -> dict[str, int]:
    ids: dict[str, int] = {}
    for month in (8, 9, 10):
        for n in range(6):
            day = dt.date(2026, month, 3 + 4 * n)
            source_id = f"L{month}-{n}"
            ids[source_id] = post(store, Kind.LICENCE, licence_on(source_id, day.isoformat(), DEPARTMENTS[n % 3]))
            if n % 3 != 2:  # a third never published: overdue
                publish(store, ids[source_id], "portal", at(f"{day + dt.timedelta(days=1 + 7 * (n % 2))}T09:00:00"))
                publish(store, ids[source_id], "national", at(f"{day + dt.timedelta(days=2)}T09:00:00"))
    ids["L10-late"] = post(store, Kind.LICENCE, licence_on("L10-late", "2026-10-30"))  # platforms due 11-27
    return ids


def report(store: Store) -> dict[str, Any]:
    return build_report(store, PERIOD, as_of=AS_OF, now=NOW)


def kept_months(store: Store) -> set[str]:
    return set(store.db.read(lambda c: c.execute(sa.select(settled_standing.c.month).distinct()).scalars().all()))


def recounted(store: Store) -> dict[str, Any]:
    """The same report with nothing kept: what the kept months must equal."""
    store.db.transact(lambda c: c.execute(sa.delete(settled_standing)))
    return report(store)


def publish_late(store: Store, ids: dict[str, int]) -> None:
    publish(store, ids["L8-2"], "portal", at("2026-11-20T09:00:00"))  # overdue → late


def correct(store: Store, ids: dict[str, int]) -> None:
    changed = licence_on("L9-1", "2026-09-14", DEPARTMENTS[1], content="更正：决定日期")  # later due dates
    assert post(store, Kind.LICENCE, changed) == ids["L9-1"]  # version 2: its deliveries are new


def withdraw(store: Store, ids: dict[str, int]) -> None:
    store.withdraw(
        source_system="approval-system",
        kind=Kind.LICENCE,
        source_id="L8-5",
        reason=WithdrawReason.REVOKED,
        note=None,
        actor=SOURCE,
        now=at("2026-08-24T09:00:00"),  # before its due dates: its unpublished pairs no longer count
    )


def import_old(store: Store, ids: dict[str, int]) -> None:
    [stored] = store.ingest(
        source_system="approval-system",
        kind=Kind.LICENCE,
        items=[
            __import__("tests.contract.test_store", fromlist=["incoming"]).incoming(
                licence_on("OLD-1", "2026-09-15", "房监科"), Kind.LICENCE
            )
        ],
        actor=SOURCE,
        now=NOW,
        origin="import",
    )
    assert stored.record_id


def recompute_due_date(store: Store, ids: dict[str, int]) -> None:
    def work(conn: sa.Connection) -> None:
        conn.execute(
            sa.update(delivery)
            .where(delivery.c.record_id == ids["L8-0"], delivery.c.target == "portal")
            .values(due_date=dt.date(2026, 8, 3), due_by=at("2026-08-04T00:00:00"))  # now published late
        )

    store.db.transact(work)


def move_decision(store: Store, ids: dict[str, int]) -> None:
    store.db.transact(
        lambda c: c.execute(sa.update(record).where(record.c.id == ids["L9-4"]).values(decided_on=dt.date(2026, 8, 30)))
    )


CHANGES: dict[str, Callable[[Store, dict[str, int]], None]] = {
    "late publication": publish_late,
    "correction": correct,
    "withdrawal": withdraw,
    "import of an old decision": import_old,
    "due-date recompute": recompute_due_date,
    "decision date moved": move_decision,
}


def test_the_trend_reuses_settled_months_and_equals_a_recount(store: Store) -> None:
    seed(store)
    first = report(store)
    assert kept_months(store) == set(SETTLED)  # October is still pending: not kept
    again = report(store)  # from the kept months
    assert again == first == recounted(store)
    trend = {p["month"]: p for p in first["trend"]}
    assert trend["2026-08"]["overdue"] > 0 and trend["2026-09"]["on_time"] > 0


@pytest.mark.parametrize("change", list(CHANGES))
def test_each_change_to_a_past_month_forgets_it(store: Store, change: str) -> None:
    ids = seed(store)
    before = report(store)
    assert kept_months(store) == set(SETTLED)
    CHANGES[change](store, ids)
    assert kept_months(store) < set(SETTLED), "the changed month must be forgotten"
    after = report(store)
    assert after == recounted(store)
    assert after["trend"] != before["trend"], "the change must show in the trend (else this test proves nothing)"


def test_all_changes_in_turn_leave_every_report_equal_to_a_recount(store: Store) -> None:
    ids = seed(store)
    for change in CHANGES.values():
        report(store)  # keeps what is settled
        change(store, ids)
        assert report(store) == recounted(store)


def test_a_report_as_of_an_earlier_day_does_not_reuse_later_counts(store: Store) -> None:
    seed(store)
    publish_late(store, {"L8-2": seed_id(store, "L8-2")})
    report(store)
    assert "2026-08" in kept_months(store)
    early = build_report(store, PERIOD, as_of=dt.date(2026, 11, 10), now=NOW)  # before the late publication
    kept_rows = store.db.read(lambda c: c.execute(sa.select(sa.func.count()).select_from(settled_standing)).scalar())
    store.db.transact(lambda c: c.execute(sa.delete(settled_standing)))
    assert early == build_report(store, PERIOD, as_of=dt.date(2026, 11, 10), now=NOW)
    assert kept_rows


def seed_id(store: Store, source_id: str) -> int:
    return int(
        store.db.read(lambda c: c.execute(sa.select(record.c.id).where(record.c.source_id == source_id)).scalar_one())
    )


def test_the_triggers_are_in_place(store: Store) -> None:
    """A later migration that rebuilds ``record`` or ``delivery`` (SQLite batch mode) would drop them silently."""
    if store.db.is_postgres:
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE '%settled_forget%'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%settled_forget%'"
    expected = {f"{t}_settled_forget_{e}" for t in ("record", "delivery") for e in ("insert", "delete", "update")}
    assert set(store.db.read(lambda c: c.execute(sa.text(query)).scalars().all())) == expected


def test_a_transaction_forgets_a_month_once_and_the_next_one_forgets_it_again(store: Store) -> None:
    """On PostgreSQL a transaction notes the months it forgot (0015) and skips them after: the note must end with
    the transaction, even on the same connection, or a later change would leave a stale count kept."""
    ids = seed(store)
    report(store)
    assert "2026-08" in kept_months(store)

    def published(conn: sa.Connection, source_id: str, target: str) -> None:
        conn.execute(
            sa.update(delivery)
            .where(delivery.c.record_id == ids[source_id], delivery.c.target == target)
            .values(state="published", published_at=at("2026-11-20T09:00:00"))
        )

    with store.db.engine.connect() as conn:
        with conn.begin():  # two August publications in one transaction: forgotten once, then skipped
            published(conn, "L8-2", "portal")
            published(conn, "L8-2", "national")
        assert "2026-08" not in kept_months(store)
        report(store)
        assert "2026-08" in kept_months(store)
        with conn.begin():  # the same connection, a new transaction: forgotten again
            published(conn, "L8-5", "portal")
        assert "2026-08" not in kept_months(store)
    assert report(store) == recounted(store)


def test_a_month_changed_by_an_open_transaction_is_not_kept_from_a_stale_count(pg_url: str) -> None:
    """Session A publishes late in August and has not committed; session B's report cannot store August (it
    skips the month rather than store a count A's commit would make stale), and after A commits the report
    equals a recount."""
    settings = Settings(database_url=pg_url)
    store = Store(Database(pg_url), settings.targets.routes(), deadlines.from_settings(settings.deadlines).due_dates)
    try:
        _check_concurrent_change(store)
    finally:
        store.db.dispose()


def _check_concurrent_change(store: Store) -> None:
    ids = seed(store)
    report(store)
    assert kept_months(store) == set(SETTLED)
    other = Database(str(store.db.engine.url.render_as_string(hide_password=False)))
    changed, release = threading.Event(), threading.Event()

    def session_a() -> None:
        def work(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(delivery)
                .where(delivery.c.record_id == ids["L8-2"], delivery.c.target == "portal")
                .values(state="published", published_at=at("2026-11-20T09:00:00"))
            )
            changed.set()
            assert release.wait(30)

        other.transact(work)

    store.db.transact(lambda c: c.execute(sa.delete(settled_standing)))  # B's report will want to store both
    writer = threading.Thread(target=session_a)
    writer.start()
    try:
        assert changed.wait(30)
        report(store)
        assert kept_months(store) == {"2026-09"}  # August is locked by A: skipped, not stored stale
    finally:
        release.set()
        writer.join(30)
        other.dispose()
    assert report(store) == recounted(store)


def test_only_whole_months_are_kept() -> None:
    assert settled.full_months(dt.date(2026, 8, 1), dt.date(2026, 10, 31)) == ["2026-08", "2026-09", "2026-10"]
    assert settled.full_months(dt.date(2026, 8, 2), dt.date(2026, 10, 30)) == ["2026-09"]
    assert settled.edges(dt.date(2026, 8, 2), dt.date(2026, 10, 30), ["2026-09"]) == [
        (dt.date(2026, 8, 2), dt.date(2026, 8, 31)),
        (dt.date(2026, 10, 1), dt.date(2026, 10, 30)),
    ]
    assert settled.full_months(dt.date(2026, 10, 25), dt.date(2026, 10, 25)) == []
    assert settled.month_range("2024-02") == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))


def test_a_report_of_a_kept_month_lists_its_pairs_like_a_recount(store: Store) -> None:
    seed(store)
    report(store)  # keeps August and September
    september = build_report(store, parse_period("2026-09"), as_of=AS_OF, now=NOW)
    assert september["overdue"] and september["late"]
    store.db.transact(lambda c: c.execute(sa.delete(settled_standing)))
    assert september == build_report(store, parse_period("2026-09"), as_of=AS_OF, now=NOW)


def test_one_pass_counts_and_lists_as_the_two_queries_do(store: Store) -> None:
    seed(store)
    window = {
        "decided_from": dt.date(2026, 8, 1),
        "decided_to": PERIOD.end,
        "as_of": AS_OF,
        "as_of_end": end_of_day(AS_OF),
    }
    listed_window = {**window, "decided_from": PERIOD.start}
    which = ("overdue", "late")
    ranges = [(dt.date(2026, 8, 1), dt.date(2026, 8, 31)), (PERIOD.start, PERIOD.end)]

    def both(c: sa.Connection) -> Any:
        return rates.monthly_and_listed(
            c, **window, ranges=ranges, listed_from=PERIOD.start, listed_to=PERIOD.end, which=which
        )

    months, listed = store.db.read(both)
    apart = store.db.read(lambda c: rates.monthly_groups(c, **window, ranges=ranges))

    def plain(by_month: dict[str, list[rates.Group]]) -> dict[str, Any]:
        return {
            m: sorted((g.target, g.kind, g.department, g.counts.as_dict()) for g in gs) for m, gs in by_month.items()
        }

    assert set(months) == {"2026-08", "2026-10"}
    assert plain(months) == plain(apart)
    assert listed == store.db.read(lambda c: rates.listed(c, which=which, **listed_window))
    assert listed["overdue"] and listed["late"]
