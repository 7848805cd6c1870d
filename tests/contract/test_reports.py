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

import docx
import lxml.html
import openpyxl
import sqlalchemy as sa
from docx.oxml.ns import qn

from gateway.reports.build import build_report
from gateway.reports.bulletin import to_docx
from gateway.reports.render import to_csv, to_html, to_xlsx
from outbox.ingest import Actor
from outbox.store import Store
from outbox.tables import delivery, record
from schemas.enums import Kind, WithdrawReason
from schemas.periods import parse_period
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
    # The detail sheet lists the earliest due date first, then by record and target.
    assert [(i["due_date"], i["source_id"], i["target"]) for i in data["overdue"]] == [
        ("2026-11-05", "L2", "municipal"),
        ("2026-11-06", "L3", "portal"),
        ("2026-11-12", "R1", "national"),
        ("2026-11-12", "R1", "provincial"),
        ("2026-11-17", "L6", "municipal"),
    ]
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
    assert data["summary"]["records"] == 7 and data["summary"]["records_by_kind"]["licences"] == 5
    assert {d["department"]: d["records"] for d in data["by_department"]} == {"建工科": 2, "房监科": 1, "行政审批科": 4}
    assert data["generated_at"] == "2026-11-25T10:00:00+08:00"  # Beijing time, to the second
    assert all("\u4e00" <= text[0] <= "\u9fff" for text in data["definitions"].values())  # 口径 in Chinese
    late_portal = next(i for i in data["late"] if i["target"] == "portal")
    assert late_portal["published_at"] == "2026-10-17T00:30:00+08:00"

    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(data)))
    assert book.sheetnames == [
        "汇总",
        "按科室",
        "逾期未公示",
        "超期公示",
        "年度记录",
        "联合奖惩",
        "月度任务",
        "年度任务",
    ]
    by_department = book["按科室"]
    headers = [c.value for c in by_department[1]]
    assert headers[:6] == ["科室", "类别 / 目标平台", "记录数", "投递数", "按时公示", "超期公示"]
    assert headers[-2:] == ["计入投递数", "公示率"]
    totals = {row[0].value: row for row in by_department.iter_rows(min_row=2) if row[1].value == "合计"}
    approval = totals["行政审批科"]
    assert [c.value for c in approval[2:7]] == [4, 16, 5, 2, 2]  # 4 records, 16 deliveries
    assert isinstance(approval[-1].value, float) and round(approval[-1].value, 4) == 0.5556
    assert approval[-1].number_format == "0.00%"
    assert totals["建工科"][-1].value == 4 / 7 and totals["房监科"][-1].value == "—"
    assert by_department.column_dimensions["A"].width == 16
    assert by_department.freeze_panes == "A2"
    overdue = list(book["逾期未公示"].iter_rows(min_row=2))
    assert len(overdue) == 5
    assert all(type(r[4].value) is dt.datetime and r[4].number_format == "yyyy-mm-dd" for r in overdue)
    assert overdue[0][4].value.date() == dt.date.fromisoformat(data["overdue"][0]["decided_on"])
    late = {(r[2].value, r[3].value): r for r in book["超期公示"].iter_rows(min_row=2)}
    published = late[("L2", "门户网站")][6]
    assert published.value.isoformat() == "2026-10-17T00:30:00" and published.number_format == "yyyy-mm-dd hh:mm:ss"
    quota_rows = {r[0]: r for r in book["年度记录"].iter_rows(min_row=2, values_only=True)}
    assert quota_rows["建工科"][2:4] == (1, 0)
    summary = {r[0]: r for r in book["汇总"].iter_rows(values_only=True) if r and r[0]}
    assert summary["统计截至"][1].isoformat() == "2026-11-25T00:00:00"
    assert summary["生成时间（北京时间）"][1].isoformat() == "2026-11-25T10:00:00"
    assert summary["逾期未公示"][1].startswith("尚未公示")

    text = to_csv(data)
    assert text.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(text[3:].decode("utf-8"))))
    overall = next(r for r in rows if r[1] == "全局")
    assert overall[4:8] == ["26", "9", "2", "5"] and overall[-1] == "56.25%"

    page = to_html(data).decode("utf-8")
    tree = lxml.html.fromstring(page)
    assert tree.get_element_by_id("rate").text == "56.25%"
    assert tree.get_element_by_id("generated").text == "2026-11-25 10:00:00"
    assert tree.get_element_by_id("records").text == "7" and tree.get_element_by_id("deliveries").text == "26"
    listed = {
        name: [
            [td.text_content() for td in tr.findall("td")]
            for tr in tree.xpath(f"//table[@data-table='{name}']/tbody/tr")
        ]
        for name in ("overdue", "late", "quotas", "departments")
    }
    assert len(listed["overdue"]) == 5 and len(listed["late"]) == 2
    assert ["行政审批科", "行政许可", "L2", "门户网站", "2026-10-09", "2026-10-16", "2026-10-17 00:30:00"] in listed[
        "late"
    ]
    assert "行政处罚" in [th.text for th in tree.xpath("//table[@data-table='quotas']//th")]
    assert listed["departments"][-1][:3] == ["行政审批科", "4", "16"]
    bars = {b.get("data-month"): b for b in tree.xpath("//rect[@class='bar']")}
    assert set(bars) == {"2026-09", "2026-10"}
    assert [t.text for t in tree.xpath("//text[@class='bar-value']")] == ["0.00%", "56.25%"]
    assert "口径" in page and "按时公示</b>：目标平台的业务受理结果" in page


def test_an_empty_period_says_so_in_every_table(store: Store) -> None:
    data = build_report(store, parse_period("2026-10"), as_of=AS_OF, now=NOW)
    tree = lxml.html.fromstring(to_html(data))
    for name in ("departments", "targets", "overdue", "late"):
        cells = tree.xpath(f"//table[@data-table='{name}']/tbody//td")
        assert [c.text for c in cells] == ["无"] and cells[0].get("colspan") is not None, name
    assert tree.get_element_by_id("rate").text == "—"
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(data)))
    assert book["逾期未公示"]["A2"].value == "无"


def test_the_bulletin_names_the_lagging_departments_and_their_items(store: Store) -> None:
    seed(store)
    data = report(store)
    doc = docx.Document(io.BytesIO(to_docx(data)))
    text = "\n".join(p.text for p in doc.paragraphs)
    assert "（2026-10）" in text and "总体公示率为 56.25%" in text
    assert "行政审批科：公示率 55.56%，超期公示 2 项，逾期未公示 2 项。" in text
    assert "建工科：公示率 57.14%，超期公示 0 项，逾期未公示 3 项。" in text
    assert "房监科：" not in text  # no rate: nothing counted, so not named as lagging
    assert "建工科（2026 黑名单推送（次）差1）" in text  # the 年度任务 section's note names what is missing
    tables = [[[c.text for c in row.cells] for row in t.rows] for t in doc.tables]
    departments = next(t for t in tables if t[0][0] == "科室" and t[0][1] == "记录数")
    assert ["行政审批科", "4", "16", "5", "2", "2", "3", "55.56%"] in departments
    targets = next(t for t in tables if t[0][0] == "目标平台")
    assert len(targets) == 5
    approval_items = next(t for t in tables if any(r[1] == "L3" for r in t))
    assert {(r[1], r[2], r[5]) for r in approval_items[1:]} == {
        ("L2", "信用怀化", "逾期未公示"),
        ("L3", "门户网站", "逾期未公示"),
        ("L2", "门户网站", "超期公示"),
        ("L2", "信用湖南", "超期公示"),
    }
    quotas = next(t for t in tables if t[0][:2] == ["科室", "年度"])
    assert "行政处罚" in quotas[0]
    section = doc.sections[0]
    assert (round(section.page_width.cm, 1), round(section.page_height.cm, 1)) == (21.0, 29.7)
    assert "PAGE" in section.footer._element.xml and "第 " in section.footer.paragraphs[0].text
    east_asian = {f.get(qn("w:eastAsia")) for f in doc.element.body.iter(qn("w:rFonts"))}
    assert {"宋体", "仿宋"} <= east_asian
    normal = doc.styles["Normal"].element.rPr.rFonts
    assert normal.get(qn("w:eastAsia")) == "仿宋"


def test_extra_sections_show_in_every_format(store: Store) -> None:
    data = build_report(store, parse_period("2026-10"), as_of=AS_OF, now=NOW)
    assert [s["title"] for s in data["extra_sections"]] == ["月度任务", "年度任务"]
    data["extra_sections"].append(
        {"key": "cases", "title": "典型案例", "headers": ["案例类型", "篇数"], "rows": [["从严审核", 3]]}
    )
    assert ["典型案例", "2026-10"] in list(csv.reader(io.StringIO(to_csv(data)[3:].decode("utf-8"))))
    assert "从严审核" in to_html(data).decode("utf-8")
    assert openpyxl.load_workbook(io.BytesIO(to_xlsx(data)))["典型案例"]["A2"].value == "从严审核"
    doc = docx.Document(io.BytesIO(to_docx(data)))
    assert any(row.cells[0].text == "从严审核" for t in doc.tables for row in t.rows)
