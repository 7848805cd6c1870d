"""公示率 for a seeded month, computed by the database and checked against hand-computed figures, on SQLite and
PostgreSQL; the XLSX, CSV and HTML renderings carry the same numbers.

October 2026, as of 2026-11-25. Due dates (default rules, day one = the day after the decision):

* L1 行政审批科, decided Thu 10-08: portal 10-15; platforms 11-04 (Sat 10-10 is a make-up working day).
  Published everywhere 10-09 → 4 on time.
* L2 行政审批科, decided Fri 10-09: portal 10-16; platforms 11-05. Portal 10-17 00:30 → late; national
  11-05 23:59 → on time; provincial 11-06 00:00:01 → late; municipal never → overdue.
* L3 行政审批科, decided Fri 10-30: portal 11-06, platforms 11-27. Nothing published: portal overdue,
  three platforms pending.
* L4 行政审批科, decided 10-12, withdrawn 10-13 unpublished → 4 not applicable.
  行政审批科: on time 5, late 2, overdue 2, pending 3, n/a 4 → 5/9 = 55.56 %.
* L6 建工科, decided Tue 10-20: portal 10-27; platforms 11-17. v1 published on national and portal 10-21, then
  corrected; v2 published on provincial 10-22; municipal never → overdue. 建工科: 3 on time, 1 overdue → 75 %.
* C1 房监科, a commitment decided 10-30 (no portal): three platforms due 11-27, pending → no rate, not 100 %.
* L5 建工科, decided 09-30: outside October, so not counted (it shows in the September point of the trend).
* A red list change of 建工科 published, no black one: its yearly quota is not met.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import openpyxl
import sqlalchemy as sa

from gateway.reports.build import build_report
from gateway.reports.periods import parse_period
from gateway.reports.render import to_csv, to_html, to_xlsx
from outbox.ingest import Actor
from outbox.store import Store
from outbox.tables import delivery, record
from schemas.enums import Kind, WithdrawReason
from tests.conftest import NOW
from tests.contract.test_store import incoming
from tests.factories import commitment, licence, list_change

SH = dt.timezone(dt.timedelta(hours=8))
SOURCE = Actor("approval-system", "source")
AS_OF = dt.date(2026, 11, 25)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SH)


def post(store: Store, kind: Kind, data: dict[str, Any]) -> int:
    [stored] = store.ingest(
        source_system="approval-system", kind=kind, items=[incoming(data, kind)], actor=SOURCE, now=NOW
    )
    return stored.record_id


def publish(store: Store, record_id: int, target: str, when: dt.datetime) -> None:
    def work(conn: sa.Connection) -> None:
        current = sa.select(record.c.current_version).where(record.c.id == record_id).scalar_subquery()
        done = conn.execute(
            sa.update(delivery)
            .where(delivery.c.record_id == record_id, delivery.c.target == target, delivery.c.version == current)
            .values(state="published", published_at=when)
        )
        assert done.rowcount == 1

    store.db.transact(work)


def licence_on(source_id: str, day: str, department: str = "行政审批科", **changes: Any) -> dict[str, Any]:
    return licence(source_id, department=department, decision_date=day, valid_from=day, **changes)


def seed(store: Store) -> None:
    l1 = post(store, Kind.LICENCE, licence_on("L1", "2026-10-08"))
    for target in ("national", "provincial", "municipal", "portal"):
        publish(store, l1, target, at("2026-10-09T10:00:00"))
    l2 = post(store, Kind.LICENCE, licence_on("L2", "2026-10-09"))
    publish(store, l2, "portal", at("2026-10-17T00:30:00"))
    publish(store, l2, "national", at("2026-11-05T23:59:00"))
    publish(store, l2, "provincial", at("2026-11-06T00:00:01"))
    post(store, Kind.LICENCE, licence_on("L3", "2026-10-30"))
    post(store, Kind.LICENCE, licence_on("L4", "2026-10-12"))
    store.withdraw(
        source_system="approval-system",
        kind=Kind.LICENCE,
        source_id="L4",
        reason=WithdrawReason.REVOKED,
        note=None,
        actor=SOURCE,
        now=at("2026-10-13T09:00:00"),
    )
    post(store, Kind.LICENCE, licence_on("L5", "2026-09-30", department="建工科"))
    l6 = post(store, Kind.LICENCE, licence_on("L6", "2026-10-20", department="建工科"))
    publish(store, l6, "national", at("2026-10-21T11:00:00"))
    publish(store, l6, "portal", at("2026-10-21T11:00:00"))
    assert (
        post(store, Kind.LICENCE, licence_on("L6", "2026-10-20", department="建工科", content="更正后的许可内容")) == l6
    )
    publish(store, l6, "provincial", at("2026-10-22T11:00:00"))
    post(store, Kind.COMMITMENT, commitment("C1", commitment_date="2026-10-30"))
    red = post(
        store, Kind.LIST_CHANGE, list_change("R1", list="red", list_name="守信红名单", effective_date="2026-10-15")
    )
    publish(store, red, "municipal", at("2026-10-16T09:00:00"))


def report(store: Store) -> dict[str, Any]:
    return build_report(store, parse_period("2026-10"), as_of=AS_OF, now=NOW, departments=["房监科"])


def test_a_seeded_month_matches_the_hand_computed_rates(store: Store) -> None:
    seed(store)
    data = report(store)
    departments = {d["department"]: d["counts"] for d in data["by_department"]}
    approval = departments["行政审批科"]
    assert (approval["on_time"], approval["late"], approval["overdue"]) == (5, 2, 2)
    assert (approval["pending"], approval["not_applicable"], approval["unknown"]) == (3, 4, 0)
    assert round(approval["rate"], 4) == 0.5556
    works = departments["建工科"]
    # L6 (4 pairs) and the red list change R1 (3 platforms: municipal on time, national/provincial pending,
    # due 20 working days after 10-15 = 11-12 → overdue by 11-25).
    assert (works["on_time"], works["late"], works["overdue"], works["pending"]) == (4, 0, 3, 0)
    assert works["rate"] == 4 / 7
    housing = departments["房监科"]
    assert (housing["pending"], housing["counted"], housing["rate"]) == (3, 0, None)

    l2_targets = {d["department"]: d["by_target"] for d in data["by_department"]}["行政审批科"]
    assert l2_targets["municipal"]["overdue"] == 1 and l2_targets["portal"]["overdue"] == 1
    assert data["summary"]["total"]["on_time"] == 9 and data["summary"]["total"]["counted"] == 16
    assert {(i["source_id"], i["target"]) for i in data["overdue"]} == {
        ("L2", "municipal"),
        ("L3", "portal"),
        ("L6", "municipal"),
        ("R1", "national"),
        ("R1", "provincial"),
    }
    assert {(i["source_id"], i["target"]) for i in data["late"]} == {("L2", "portal"), ("L2", "provincial")}
    quotas = {q["department"]: q for q in data["quotas"]}
    assert (quotas["建工科"]["red"], quotas["建工科"]["black"], quotas["建工科"]["met"]) == (1, 0, False)
    assert quotas["房监科"]["met"] is False and quotas["房监科"]["commitments"] == 1
    trend = {p["month"]: p for p in data["trend"]}
    assert trend["2026-09"]["overdue"] == 4 and trend["2026-09"]["rate"] == 0.0  # L5, never published
    assert trend["2026-10"]["rate"] == 9 / 16


def test_as_of_an_earlier_day_the_same_month_stands_differently(store: Store) -> None:
    seed(store)
    early = build_report(store, parse_period("2026-10"), as_of=dt.date(2026, 11, 5), now=NOW)
    approval = {d["department"]: d["counts"] for d in early["by_department"]}["行政审批科"]
    # On 11-05: L2's national publication (11-05 23:59) counts; its provincial one (11-06) has not happened
    # yet and is not yet overdue (due 11-05), nor is municipal; L3's portal is due 11-06: pending too.
    assert (approval["on_time"], approval["late"], approval["overdue"], approval["pending"]) == (5, 1, 0, 6)
    assert round(approval["rate"], 4) == round(5 / 6, 4)


def test_the_xlsx_csv_and_html_hold_the_same_numbers(store: Store) -> None:
    seed(store)
    data = report(store)
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(data)))
    assert book.sheetnames == ["汇总", "按科室", "逾期未公示", "超期公示", "年度任务", "联合奖惩"]
    by_department = book["按科室"]
    headers = [c.value for c in by_department[1]]
    assert headers[:4] == ["科室", "类别 / 目标平台", "按时公示", "超期公示"]
    totals = {row[0]: row for row in by_department.iter_rows(min_row=2, values_only=True) if row[1] == "合计"}
    assert totals["行政审批科"][2:5] == (5, 2, 2) and totals["行政审批科"][-1] == "55.56%"
    assert totals["建工科"][-1] == "57.14%" and totals["房监科"][-1] == "—"
    assert by_department.column_dimensions["A"].width == 16
    assert by_department.freeze_panes == "A2"
    overdue = list(book["逾期未公示"].iter_rows(min_row=2, values_only=True))
    assert len(overdue) == 5
    quota_rows = {r[0]: r for r in book["年度任务"].iter_rows(min_row=2, values_only=True)}
    assert quota_rows["建工科"][2:4] == (1, 0) and quota_rows["建工科"][-1] == "否"

    text = to_csv(data)
    assert text.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(text[3:].decode("utf-8"))))
    overall = next(r for r in rows if r[1] == "全局")
    assert overall[4:7] == ["9", "2", "5"] and overall[-1] == "56.25%"

    page = to_html(data).decode("utf-8")
    assert 'id="rate">56.25%<' in page and "逾期未公示 (5)" in page
