"""The 联合奖惩 section for a seeded month (November 2026), counted by hand, in JSON, CSV, XLSX and HTML, on SQLite
and PostgreSQL.

Subjects: S1 on a black list, S2 with an unfulfilled commitment, S3 on a red list only, S4 with nothing.
Checks (Asia/Shanghai), their advice and the latest measure recorded:

1. 行政审批科 S1 11-03 → restrict, refused
2. 行政审批科 S1 11-04 → restrict, no measure (findings without measure)
3. 行政审批科 S4 11-05 → no_record, no_effect
4. 建工科 S2 11-10 → caution, other then strict_review (the latest counts: strict_review)
5. 建工科 S3 11-12 → reward, fast_track
6. 建工科 S3 11-30 23:30 → reward, no measure (findings without measure)
7. 建工科 S1 10-31 23:30 and 8. 建工科 S2 12-01 00:10: outside November, not counted.

行政审批科: 3 checks, 1 subject with findings, restrict 2 / no_record 1, refused 1 / no_effect 1, 1 without measure.
建工科: 3 checks, 2 subjects with findings (S2, S3), caution 1 / reward 2, strict_review 1 / fast_track 1, 1 without.
合计: 6 checks, 3 subjects, restrict 2 caution 1 reward 2 no_record 1, refused 1 strict_review 1 fast_track 1
no_effect 1 other 0, 2 without measure.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import docx
import openpyxl
from lxml import html

from gateway.checks import CheckBody, CreditChecks, MeasureBody
from gateway.clock import ManualClock
from gateway.reports.build import build_report
from gateway.reports.bulletin import to_docx
from gateway.reports.joint import HEADERS
from gateway.reports.render import to_csv, to_html, to_json, to_xlsx
from gateway.settings import Settings
from outbox.ingest import Actor
from outbox.store import Store
from schemas.enums import Kind
from schemas.periods import parse_period
from tests.conftest import NOW
from tests.contract.test_store import incoming
from tests.factories import commitment, list_change, make_uscc

SH = dt.timezone(dt.timedelta(hours=8))
SOURCE = Actor("approval-system", "source")
CLERK = Actor("approval-office", "source")
S1, S2, S3, S4 = (make_uscc(f"91431200MA4L7R{i}0X") for i in range(1, 5))

EXPECTED = [
    ["行政审批科", 3, 1, 2, 0, 0, 1, 1, 0, 0, 1, 0, 1],
    ["建工科", 3, 2, 0, 1, 2, 0, 0, 1, 1, 0, 0, 1],
    ["合计", 6, 3, 2, 1, 2, 1, 1, 1, 1, 1, 0, 2],
]


def post(store: Store, kind: Kind, data: dict[str, Any]) -> None:
    store.ingest(source_system="approval-system", kind=kind, items=[incoming(data, kind)], actor=SOURCE, now=NOW)


def seed(store: Store, settings: Settings) -> None:
    post(store, Kind.LIST_CHANGE, list_change("MD-1", counterpart__uscc=S1))
    unfulfilled = {"fulfilment": "unfulfilled", "unfulfilled_content": "未补交", "liability_action": "约谈"}
    post(store, Kind.COMMITMENT, commitment("CN-1", counterpart__uscc=S2, commitment_date="2026-10-02", **unfulfilled))
    red = {"list": "red", "list_name": "守信红名单", "expiry_date": None}
    post(store, Kind.LIST_CHANGE, list_change("MD-2", counterpart__uscc=S3, **red))
    settings.targets.national.enabled = False
    clock = ManualClock(NOW)
    service = CreditChecks(settings, store, clock)
    plan = [
        ("行政审批科", S1, "2026-11-03T09:00", ["refused"]),
        ("行政审批科", S1, "2026-11-04T09:00", []),
        ("行政审批科", S4, "2026-11-05T09:00", ["no_effect"]),
        ("建工科", S2, "2026-11-10T09:00", ["other", "strict_review"]),
        ("建工科", S3, "2026-11-12T09:00", ["fast_track"]),
        ("建工科", S3, "2026-11-30T23:30", []),
        ("建工科", S1, "2026-10-31T23:30", ["refused"]),
        ("建工科", S2, "2026-12-01T00:10", []),
    ]
    try:
        for department, code, when, measures in plan:
            clock.set(dt.datetime.fromisoformat(when).replace(tzinfo=SH))
            body = {
                "subject": {"uscc": code},
                "matter": "施工许可",
                "matter_type": "licence",
                "department": department,
                "requested_by": "李四",
            }
            found = service.run(CLERK, CheckBody.model_validate(body))
            for measure in measures:
                service.measure(CLERK, found["id"], MeasureBody(measure=measure))
    finally:
        service.close()


def report(store: Store, settings: Settings) -> dict[str, Any]:
    seed(store, settings)
    return build_report(store, parse_period("2026-11"), as_of=dt.date(2026, 11, 30), now=NOW)


def test_joint_measures_counted_by_hand_in_every_format(store: Store, settings: Settings) -> None:
    data = report(store, settings)
    section = data["joint_measures"]
    total = section["total"]
    assert (total["checks"], total["subjects_with_findings"], total["findings_without_measure"]) == (6, 3, 2)
    assert total["advice"] == {"restrict": 2, "caution": 1, "reward": 2, "no_record": 1}
    assert total["measures"] == {"refused": 1, "strict_review": 1, "fast_track": 1, "no_effect": 1, "other": 0}
    assert [d["department"] for d in section["by_department"]] == ["建工科", "行政审批科"]

    import orjson

    assert orjson.loads(to_json(data))["joint_measures"] == section

    lines = list(csv.reader(io.StringIO(to_csv(data).decode("utf-8-sig"))))
    start = lines.index(["联合奖惩", "2026-11"])
    assert lines[start + 1] == HEADERS
    assert sorted(lines[start + 2 : start + 5]) == sorted([[str(c) for c in row] for row in EXPECTED])

    sheet = openpyxl.load_workbook(io.BytesIO(to_xlsx(data)))["联合奖惩"]
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert values[0] == HEADERS and sorted(values[1:], key=str) == sorted(EXPECTED, key=str)

    page = html.fromstring(to_html(data))
    [heading] = page.xpath("//h2[text()='联合奖惩']")
    table = heading.getnext()
    assert [th.text for th in table.xpath(".//th")] == HEADERS
    cells = [[td.text for td in tr.xpath("td")] for tr in table.xpath(".//tbody/tr")]
    assert sorted(cells) == sorted([[str(c) for c in row] for row in EXPECTED])

    bulletin = docx.Document(io.BytesIO(to_docx(data)))  # the monthly 通报 carries the same table
    [joint] = [t for t in bulletin.tables if [c.text for c in t.rows[0].cells] == HEADERS]
    assert sorted([c.text for c in r.cells] for r in joint.rows[1:]) == sorted(
        [[str(c) for c in row] for row in EXPECTED]
    )


def test_a_report_kept_before_the_section_existed_still_renders(store: Store, settings: Settings) -> None:
    data = build_report(store, parse_period("2026-11"), as_of=dt.date(2026, 11, 30), now=NOW)
    assert data["joint_measures"]["total"]["checks"] == 0
    del data["joint_measures"]
    assert b"\xe8\x81\x94\xe5\x90\x88\xe5\xa5\x96\xe6\x83\xa9" not in to_csv(data)  # no 联合奖惩 block
    assert "联合奖惩" in openpyxl.load_workbook(io.BytesIO(to_xlsx(data))).sheetnames
    assert to_html(data).count("联合奖惩".encode()) == 1
