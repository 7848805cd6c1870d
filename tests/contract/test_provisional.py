"""Provisional due dates in a year whose 放假安排 is not published yet, and their audited recomputation when it is,
on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.clock import ManualClock
from gateway.housekeeping import Housekeeping
from gateway.settings import DeadlineSettings, Settings
from outbox import tables
from outbox.ingest import Actor, Incoming
from outbox.store import Store
from schemas import deadlines
from schemas.enums import Kind
from schemas.periods import parse_period
from schemas.validation import Canonical, validate
from tests.conftest import bearer
from tests.factories import licence

SOURCE = Actor("approval-system", "source")
DECEMBER_11 = dt.datetime(2026, 12, 11, 2, 0, tzinfo=dt.UTC)  # 10:00 in Huaihua, the day after the decision


def _deliveries(store: Store) -> dict[str, tuple[str, str]]:
    rows = store.db.read(
        lambda c: c.execute(
            sa.select(tables.delivery.c.target, tables.delivery.c.due_date, tables.delivery.c.due_date_basis)
        ).all()
    )
    return {t: (d.isoformat(), b) for t, d, b in rows}


def test_a_december_licence_gets_a_provisional_due_date_that_the_official_schedule_replaces(
    settings: Settings, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(DECEMBER_11)
    table = tmp_path / "workdays-2027.toml"
    table.write_text("# 2027 not published yet\n", encoding="utf-8")
    rules = deadlines.from_settings(DeadlineSettings(overrides_file=table))
    gateway_store = Store(store.db, settings.targets.routes(), rules.due_dates)
    housekeeping = Housekeeping(settings, gateway_store, clock, rules, dict)

    data = licence("PV-1", decision_date="2026-12-10", valid_from="2026-12-10")
    canonical = validate(Kind.LICENCE, data, today=dt.date(2026, 12, 11))
    assert isinstance(canonical, Canonical)
    gateway_store.ingest(
        source_system="approval-system",
        kind=Kind.LICENCE,
        items=[Incoming(canonical, data)],
        actor=SOURCE,
        now=clock.now(),
    )

    # Hand count over the 2027 statutory holidays (holidays' China calendar; weekday ones: 01-01 元旦, 02-05 除夕,
    # 02-08..02-10 春节, 04-05, 05-03, 05-04, 06-09, 09-15, 10-01, 10-04, 10-05), from Thu 2026-12-10, day one the
    # next day: 12-11 (1); 12-14..18 (2-6); 12-21..25 (7-11); 12-28..31 (12-15); Fri 2027-01-01 元旦 off;
    # Sat 01-02, Sun 01-03 off; 01-04 (16), 01-05 (17), 01-06 (18), 01-07 (19), Fri 01-08 (20).
    assert _deliveries(store) == {
        "national": ("2027-01-08", "provisional"),
        "provincial": ("2027-01-08", "provisional"),
        "municipal": ("2027-01-08", "provisional"),
        "portal": ("2026-12-17", "official"),  # 7 calendar days need no schedule
    }
    view = housekeeping.annotate(gateway_store.record_view(Kind.LICENCE, "PV-1", None))
    national = next(d for d in view["deliveries"] if d["target"] == "national")
    assert national["due_date_basis"] == "provisional" and national["standing"] == "pending"
    assert "2027" in national["due_note"] and view["origin"] == "api"

    # Reports count them, judged like the others and shown as provisional; nothing is "unknown" any more.
    report = housekeeping.compute_report(parse_period("2026-12"))
    assert report["summary"]["total"]["provisional"] == 3
    assert report["summary"]["total"]["unknown"] == 0 and report["summary"]["total"]["pending"] == 4
    assert report["summary"]["by_target"]["portal"]["provisional"] == 0

    # The at-risk view no longer refuses a horizon in 2027 (409 calendar-missing): 20 working days after Fri
    # 12-11 are 12-14..18 (5), 12-21..25 (10), 12-28..31 (14), 元旦 off, 01-04..08 (19), Mon 01-11 (20).
    risk = housekeeping.at_risk(workdays=20)
    assert (risk["horizon"], risk["horizon_basis"]) == (dt.date(2027, 1, 11), "provisional")
    assert sorted((i["target"], i["due_date_basis"]) for i in risk["items"]) == [
        ("municipal", "provisional"),
        ("national", "provisional"),
        ("portal", "official"),
        ("provincial", "provisional"),
    ]

    # Nothing published yet: recomputing changes nothing and audits nothing.
    assert housekeeping.recompute_provisional() == []

    # The State Council publishes 2027 with a make-up working day on Sat 01-02 (a 调休 for the New Year).
    table.write_text(
        '[years.2027]\nsource = "test notice"\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-02"]\n',
        encoding="utf-8",
    )
    with caplog.at_level(logging.INFO, logger="gateway.housekeeping"):
        changes = housekeeping.recompute_provisional(actor=Actor("cli", "operator"))
    # 12-31 is working day 15; 01-01 off; Sat 01-02 works (16); 01-04 (17) .. 01-07 (20): one day earlier.
    assert sorted((c["target"], c["from"], c["to"], c["basis"]) for c in changes) == [
        (t, dt.date(2027, 1, 8), dt.date(2027, 1, 7), "official") for t in ("municipal", "national", "provincial")
    ]
    assert _deliveries(store)["national"] == ("2027-01-07", "official")
    audit = store.db.read(
        lambda c: c.execute(
            sa.select(tables.audit_event).where(tables.audit_event.c.action == "deadline.recomputed")
        ).all()
    )
    assert len(audit) == 1 and audit[0].source_id == "PV-1" and audit[0].actor == "cli"
    detail: dict[str, Any] = audit[0].detail
    assert detail["targets"]["national"] == {"from": "2027-01-08", "to": "2027-01-07", "basis": "official"}
    moved = [r for r in caplog.records if getattr(r, "action", None) == "deadline_recomputed"]
    assert len(moved) == 3 and all(r.levelno == logging.WARNING for r in moved)
    assert {(r.target, r.due_from, r.due_to, r.basis) for r in moved} == {  # type: ignore[attr-defined]
        (t, "2027-01-08", "2027-01-07", "official") for t in ("national", "provincial", "municipal")
    }
    # New decisions are counted on the official schedule at once (the calendar was reloaded in place).
    assert rules.due_with_basis("national", Kind.LICENCE, dt.date(2026, 12, 10)) is not None
    assert rules.due("national", Kind.LICENCE, dt.date(2026, 12, 10)) == dt.date(2027, 1, 7)
    # A second run finds nothing provisional left.
    assert housekeeping.recompute_provisional() == []
    assert housekeeping.compute_report(parse_period("2026-12"))["summary"]["total"]["provisional"] == 0


def test_the_api_shows_the_basis_and_the_at_risk_view_answers_across_the_year(
    client: httpx.Client, clock: ManualClock, source_key: str, operator_key: str
) -> None:
    clock.set(DECEMBER_11)
    data = licence("PV-API", decision_date="2026-12-10", valid_from="2026-12-10")
    assert client.post("/api/v1/licences", json=data, headers=bearer(source_key)).status_code == 201
    view = client.get("/api/v1/licences/PV-API", headers=bearer(source_key)).json()
    assert {d["target"]: (d["due_date"], d["due_date_basis"]) for d in view["deliveries"]} == {
        "national": ("2027-01-08", "provisional"),
        "provincial": ("2027-01-08", "provisional"),
        "municipal": ("2027-01-08", "provisional"),
        "portal": ("2026-12-17", "official"),
    }
    risk = client.get("/api/v1/deliveries/at-risk", params={"workdays": 20}, headers=bearer(operator_key))
    assert risk.status_code == 200, risk.text  # no longer 409 calendar-missing
    assert risk.json()["horizon_basis"] == "provisional" and len(risk.json()["items"]) == 4
