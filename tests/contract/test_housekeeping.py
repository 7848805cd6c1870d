"""Reports over HTTP, the at-risk view, due-date backfill, publication-period expiry and the scheduled jobs, on
SQLite and PostgreSQL (the clock is the tests' manual clock: 2026-11-25 10:00 in Huaihua)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import sqlalchemy as sa

from gateway.clock import ManualClock
from gateway.housekeeping import Housekeeping
from gateway.jobs import Jobs
from gateway.settings import DeadlineSettings, Settings
from outbox import tables
from outbox.ingest import Actor
from outbox.store import Store
from schemas import deadlines
from schemas.enums import Kind
from schemas.expiry import add_months, penalty_end
from tests.conftest import bearer
from tests.contract.test_reports import SH, publish, seed
from tests.contract.test_store import incoming
from tests.factories import licence, list_change, penalty

SOURCE = Actor("approval-system", "source")


def housekeeping(settings: Settings, store: Store, clock: ManualClock, **deadline: Any) -> Housekeeping:
    rules = deadlines.from_settings(DeadlineSettings(**deadline))
    return Housekeeping(settings, store, clock, rules, dict)


def post(store: Store, kind: Kind, data: dict[str, Any], now: dt.datetime) -> int:
    [stored] = store.ingest(
        source_system="approval-system", kind=kind, items=[incoming(data, kind)], actor=SOURCE, now=now
    )
    return stored.record_id


def test_reports_are_stored_listed_and_downloaded_in_every_format(
    client: httpx.Client, store: Store, operator_key: str, source_key: str
) -> None:
    seed(store)
    auth = bearer(operator_key)
    live = client.get("/api/v1/rates", params={"period": "2026-10", "as_of": "2026-11-25"}, headers=auth).json()
    assert live["summary"]["total"]["counted"] == 16 and live["summary"]["total"]["on_time"] == 9
    created = client.post("/api/v1/reports", json={"period": "2026-10", "as_of": "2026-11-25"}, headers=auth)
    assert created.status_code == 201 and created.headers["location"] == f"/api/v1/reports/{created.json()['id']}"
    report_id = created.json()["id"]
    listed = client.get("/api/v1/reports", headers=auth).json()["items"]
    assert [(r["id"], r["period"], r["trigger"], r["actor"]) for r in listed] == [
        (report_id, "2026-10", "on_demand", "credit-office")
    ]
    xlsx = client.get(f"/api/v1/reports/{report_id}", params={"format": "xlsx"}, headers=auth)
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f'filename="gongshilv-2026-10-{report_id}.xlsx"' in xlsx.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    summary = next(r for r in book["汇总"].iter_rows(min_row=2, values_only=True) if r[0] == "全局")
    assert summary[2:7] == (7, 26, 9, 2, 5) and summary[-1] == 9 / 16  # records, deliveries, standings; the rate
    docx = client.get(f"/api/v1/reports/{report_id}", params={"format": "docx"}, headers=auth)
    assert docx.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.wordprocessing")
    assert docx.content.startswith(b"PK")  # a zip: the .docx package
    stored = client.get(f"/api/v1/reports/{report_id}", headers=auth).json()
    assert stored["summary"] == live["summary"]  # the stored run is what was computed
    assert client.get(f"/api/v1/reports/{report_id}", params={"format": "csv"}, headers=auth).content.startswith(
        b"\xef\xbb\xbf"
    )
    assert "<svg" in client.get(f"/api/v1/reports/{report_id}", params={"format": "html"}, headers=auth).text

    bad = client.get("/api/v1/rates", params={"period": "October"}, headers=auth)
    assert bad.status_code == 422 and "is not a month" in bad.json()["detail"]
    assert client.get("/api/v1/reports/999", headers=auth).status_code == 404
    assert client.get(f"/api/v1/reports/{report_id}", params={"format": "pdf"}, headers=auth).status_code == 422
    assert client.get("/api/v1/reports", headers=bearer(source_key)).status_code == 403
    assert client.get("/api/v1/reports").status_code == 401
    audit = store.db.read(
        lambda c: c.execute(
            sa.select(tables.audit_event.c.actor).where(tables.audit_event.c.action == "report.created")
        ).all()
    )
    assert audit == [("credit-office",)]


def test_at_risk_lists_the_closest_deadlines_first(
    client: httpx.Client, store: Store, operator_key: str, clock: ManualClock
) -> None:
    now = clock.now()
    # Decided Mon 11-02: platforms due 11-30 (Mon), portal 11-09 (overdue). Decided 11-20: portal 11-27 (Fri),
    # platforms 12-18. Today Wed 11-25; 3 working days → horizon Mon 11-30.
    early = post(store, Kind.LICENCE, licence("AR-1", decision_date="2026-11-02", valid_from="2026-11-02"), now)
    post(store, Kind.LICENCE, licence("AR-2", decision_date="2026-11-20", valid_from="2026-11-20"), now)
    publish(store, early, "national", dt.datetime(2026, 11, 3, 9, tzinfo=SH))
    view = client.get("/api/v1/deliveries/at-risk", headers=bearer(operator_key)).json()
    assert view["horizon"] == "2026-11-30"
    got = [(i["source_id"], i["target"], i["due_date"], i["overdue"], i["workdays_left"]) for i in view["items"]]
    assert got == [
        ("AR-1", "portal", "2026-11-09", True, 0),
        ("AR-2", "portal", "2026-11-27", False, 2),
        ("AR-1", "provincial", "2026-11-30", False, 3),
        ("AR-1", "municipal", "2026-11-30", False, 3),
    ]
    wide = client.get("/api/v1/deliveries/at-risk", params={"workdays": 20}, headers=bearer(operator_key)).json()
    assert len(wide["items"]) == 7  # AR-2's platforms (due 12-18) come into a 20-working-day horizon


def test_due_dates_the_calendar_could_not_give_are_filled_once_it_can(
    settings: Settings, store: Store, clock: ManualClock, tmp_path: Path
) -> None:
    rid = post(store, Kind.LICENCE, licence("DD-1", decision_date="2026-11-25", valid_from="2026-11-25"), clock.now())
    # 20 working days from 11-25 end on 12-23: inside 2026. Fake a record decided late in December by hand.
    store.db.transact(
        lambda c: c.execute(
            sa.update(tables.record).where(tables.record.c.id == rid).values(decided_on=dt.date(2026, 12, 21))
        )
    )
    store.db.transact(
        lambda c: c.execute(sa.update(tables.delivery).values(due_date=None, due_by=None, due_date_basis=None))
    )
    strict = housekeeping(settings, store, clock, provisional=False)
    assert strict.refresh_due_dates() == 1  # only the portal: 7 calendar days
    table = tmp_path / "2027.toml"
    table.write_text('[years.2027]\nholidays = ["2027-01-01"]\nworkdays = []\n', encoding="utf-8")
    assert housekeeping(settings, store, clock, overrides_file=table, provisional=False).refresh_due_dates() == 3
    dues = dict(
        store.db.read(lambda c: c.execute(sa.select(tables.delivery.c.target, tables.delivery.c.due_date)).all())
    )
    # Mon 12-21: 12-22..25 (4), 12-28..31 (8), Fri 01-01 off, 01-04..08 (13), 01-11..15 (18), 01-18, 01-19 (20).
    assert set(store.db.read(lambda c: c.execute(sa.select(tables.delivery.c.due_date_basis)).scalars())) == {
        "official"
    }
    assert dues == {
        "portal": dt.date(2026, 12, 28),
        "national": dt.date(2027, 1, 19),
        "provincial": dt.date(2027, 1, 19),
        "municipal": dt.date(2027, 1, 19),
    }


def test_publication_periods_end_by_the_rules_in_force(settings: Settings, store: Store, clock: ManualClock) -> None:
    rules = settings.jobs.period_rules
    # Given: the source's own date wins.
    assert penalty_end({"publish_until": "2027-10-17", "decision_date": "2026-10-10"}, rules) == (
        dt.date(2027, 10, 17),
        "publish_until",
    )
    # 2020 (527号): a fine alone 12 months; with a revoked licence, the longest (36) applies.
    assert penalty_end({"decision_date": "2020-03-31", "penalty_categories": ["fine"]}, rules) == (
        dt.date(2021, 3, 31),
        "发改办财金〔2019〕527号",
    )
    assert penalty_end({"decision_date": "2020-03-31", "penalty_categories": ["fine", "revoke_licence"]}, rules)[
        0
    ] == dt.date(2023, 3, 31)
    # 2024 (58号令): a warning alone 3 months; a fine 36.
    assert penalty_end({"decision_date": "2024-08-31", "penalty_categories": ["warning"]}, rules)[0] == dt.date(
        2024, 11, 30
    )
    assert add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)

    now = clock.now()
    post(
        store,
        Kind.PENALTY,
        penalty("EX-given", decision_date="2026-01-05", valid_until="2026-01-12", publish_until="2026-11-24"),
        now,
    )
    post(
        store,
        Kind.PENALTY,
        penalty("EX-today", decision_date="2026-01-05", valid_until="2026-01-12", publish_until="2026-11-25"),
        now,
    )
    post(
        store,
        Kind.PENALTY,
        penalty(
            "EX-warn",
            decision_date="2026-05-06",
            valid_until="2026-05-06",
            publish_until=None,
            penalty_categories=["warning"],
            fine_amount=None,
            content="警告",
        ),
        now,
    )
    post(
        store,
        Kind.PENALTY,
        penalty("EX-fine", decision_date="2026-05-06", valid_until="2026-05-06", publish_until=None),
        now,
    )
    post(store, Kind.LIST_CHANGE, list_change("EX-list", effective_date="2025-09-01", expiry_date="2026-08-31"), now)
    post(store, Kind.LIST_CHANGE, list_change("EX-live", effective_date="2025-09-01", expiry_date="2099-12-31"), now)
    done = housekeeping(settings, store, clock).expire()
    assert {d["source_id"]: d["note"] for d in done} == {
        "EX-given": "公示期满 2026-11-24 (publish_until)",
        "EX-warn": "公示期满 2026-08-06 (国家发展改革委令第36号)",
        "EX-list": "公示期满 2026-08-31 (expiry_date)",
    }
    assert housekeeping(settings, store, clock).expire() == []
    reasons = store.db.read(
        lambda c: c.execute(
            sa.select(tables.record.c.source_id, tables.record.c.withdraw_reason).where(
                tables.record.c.withdrawn_at.is_not(None)
            )
        ).all()
    )
    assert sorted(reasons) == [("EX-given", "period_ended"), ("EX-list", "period_ended"), ("EX-warn", "period_ended")]


def test_scheduled_jobs_run_their_work_once_across_processes(
    settings: Settings, store: Store, clock: ManualClock
) -> None:
    seed(store)
    jobs = Jobs(housekeeping(settings, store, clock))
    jobs.start()
    try:
        runs = jobs.next_runs()
        assert set(runs) == {"daily-report", "monthly-report", "reconcile", "expiry"}
        assert runs["monthly-report"] is not None and runs["monthly-report"].day == 1
        assert (runs["daily-report"].hour, runs["daily-report"].minute) == (7, 30)
    finally:
        jobs.stop()
    report_id = jobs.monthly_report()
    assert store.report(report_id)["period"] == "2026-10"  # today is 2026-11-25: last month
    assert store.report(jobs.daily_report())["trigger"] == "daily"
    with store.singleton("job:monthly-report") as first:
        assert first
        if store.db.engine.dialect.name == "postgresql":
            with store.singleton("job:monthly-report") as second:
                assert not second  # another session holds it: this one skips
            before = len(store.reports())
            jobs._guarded("monthly-report", jobs.monthly_report)()
            assert len(store.reports()) == before
    jobs._guarded("monthly-report", jobs.monthly_report)()
    assert store.reports()[0]["trigger"] == "monthly"


def test_the_push_loop_leases_deliveries_at_risk_first(store: Store, clock: ManualClock) -> None:
    now = clock.now()
    late_in_queue = [
        post(store, Kind.LICENCE, licence(f"PR-{n}", decision_date="2026-11-20", valid_from="2026-11-20"), now)
        for n in range(3)
    ]
    urgent = post(store, Kind.LICENCE, licence("PR-urgent", decision_date="2026-10-30", valid_from="2026-10-30"), now)
    lease: dict[str, Any] = {"target": "national", "owner": "w", "now": now, "lease_for": dt.timedelta(seconds=60)}
    [first] = store.lease_due(limit=1, urgent_by=dt.date(2026, 11, 30), **lease)  # due 11-27: at risk
    assert first.record_id == urgent
    taken = store.lease_due(limit=2, urgent_by=dt.date(2026, 11, 30), **lease)  # nothing urgent left: queue order
    assert [t.record_id for t in taken] == late_in_queue[:2]
    assert [t.record_id for t in store.lease_due(limit=5, **lease)] == late_in_queue[2:]


def test_the_risk_horizon_never_guesses_past_the_calendar(clock: ManualClock) -> None:
    from schemas.calendar import load_calendar
    from schemas.deadlines import RiskHorizon

    horizon = RiskHorizon(load_calendar(provisional=False), 3, clock)
    assert horizon() == dt.date(2026, 11, 30)  # Wed 11-25 + 3 working days
    clock.set(dt.datetime(2026, 12, 30, 2, tzinfo=dt.UTC))
    assert horizon() == dt.date(2026, 12, 30)  # 2027 unknown: only due-today and overdue go first
    # Counting provisionally: Wed 12-30 → 12-31 (1), 元旦 01-01 off, weekend, 01-04 (2), 01-05 (3).
    assert RiskHorizon(load_calendar(), 3, clock)() == dt.date(2027, 1, 5)


def test_the_record_view_shows_due_dates_and_standings(client: httpx.Client, store: Store, source_key: str) -> None:
    auth = bearer(source_key)
    late = licence("RV-1", decision_date="2026-10-08", valid_from="2026-10-08")
    assert client.post("/api/v1/licences", json=late, headers=auth).status_code == 201
    record_id = client.get("/api/v1/licences/RV-1", headers=auth).json()["id"]
    publish(store, record_id, "national", dt.datetime(2026, 11, 4, 20, tzinfo=SH))  # the last evening: on time
    corrected = licence("RV-1", decision_date="2026-10-08", valid_from="2026-10-08", content="更正后的内容")
    assert client.post("/api/v1/licences", json=corrected, headers=auth).status_code == 201
    view = client.get("/api/v1/licences/RV-1", headers=auth).json()
    assert view["decided_on"] == "2026-10-08"
    current = {d["target"]: d for d in view["deliveries"] if d["version"] == 2}
    assert {t: (d["due_date"], d["standing"]) for t, d in current.items()} == {
        "national": ("2026-11-04", "on_time"),  # v1's acceptance counts: a correction does not reset the clock
        "provincial": ("2026-11-04", "overdue"),
        "municipal": ("2026-11-04", "overdue"),
        "portal": ("2026-10-15", "overdue"),
    }
    assert all("standing" not in d for d in view["deliveries"] if d["version"] == 1)
