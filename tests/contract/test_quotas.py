"""The plan's quotas (月度任务, 年度任务) on a seeded year, counted by hand, on SQLite and PostgreSQL; the same
figures in JSON, CSV, XLSX, HTML and the 通报; the month-end at-risk entries from the fifth working day before
month end and not before.

The seed (2026; the report is 2026-Q3 as of Wed 2026-09-30; departments in code-point order 建工科, 房监科, 行政审批科):

work news (工作动态), by publication date, and which target accepted it when:
* N1 建工科 07-03: portal 07-03, 信用怀化 07-04     → 建工科 portal July 1; bureau July 1
* N2 建工科 07-20: portal 07-20                     → 建工科 portal July 2
* N3 房监科 07-25: 信用怀化 07-26 only              → 房监科 portal July 0; bureau July 2
* N4 房监科 08-10: portal and 信用怀化 08-11        → 房监科 portal August 1; bureau August 1
* N5 建工科 08-31: not accepted anywhere            → nothing
* N6 建工科 09-05: portal on 10-02, after the as-of day → nothing as of 09-30
* N7 房监科 09-14: portal 09-14, 信用怀化 09-15     → 房监科 portal September 1; bureau September 1
* N8 房监科 09-15: 信用怀化 09-16                   → bureau September 2
* N9 行政审批科 06-30: portal 06-30                 → June: outside the quarter's months
typical cases (典型案例), counted once accepted by any target:
* K1 建工科 2026-03-01, 信用怀化 → 建工科 1;  K2 房监科 2025-12-30 → last year;  K3 行政审批科 09-01, never → 0
list changes, counted once accepted by any target:
* R1 建工科 red 05-10, municipal → red 1;  B1 建工科 black 06-01, national and provincial → black 1 (one change)
* B2 房监科 black 09-20, never accepted → 0;  R2 房监科 red 2025-11-01 → last year
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import docx
import httpx
import lxml.html
import openpyxl
import orjson
import pytest
from typer.testing import CliRunner

from gateway.clock import ManualClock
from gateway.housekeeping import Housekeeping
from gateway.reports.build import build_report
from gateway.reports.bulletin import to_docx
from gateway.reports.render import to_csv, to_html, to_json, to_xlsx
from gateway.settings import DeadlineSettings, QuotaSettings, Settings
from outbox.database import Database
from outbox.store import Store
from schemas import deadlines
from schemas.enums import Kind
from schemas.periods import parse_period
from tests.conftest import bearer
from tests.contract.test_reports import NOW, SH, post, publish
from tests.factories import case, licence, list_change
from tests.factories import news as news_item

AS_OF = dt.date(2026, 9, 30)


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=SH)


def seed(store: Store) -> None:
    news: list[tuple[str, str, str, dict[str, str]]] = [
        ("N1", "建工科", "2026-07-03", {"portal": "2026-07-03", "municipal": "2026-07-04"}),
        ("N2", "建工科", "2026-07-20", {"portal": "2026-07-20"}),
        ("N3", "房监科", "2026-07-25", {"municipal": "2026-07-26"}),
        ("N4", "房监科", "2026-08-10", {"portal": "2026-08-11", "municipal": "2026-08-11"}),
        ("N5", "建工科", "2026-08-31", {}),
        ("N6", "建工科", "2026-09-05", {"portal": "2026-10-02"}),
        ("N7", "房监科", "2026-09-14", {"portal": "2026-09-14", "municipal": "2026-09-15"}),
        ("N8", "房监科", "2026-09-15", {"municipal": "2026-09-16"}),
        ("N9", "行政审批科", "2026-06-30", {"portal": "2026-06-30"}),
    ]
    cases = [
        ("K1", "建工科", "2026-03-01", {"municipal": "2026-03-02"}),
        ("K2", "房监科", "2025-12-30", {"portal": "2025-12-30"}),
        ("K3", "行政审批科", "2026-09-01", {}),
    ]
    for kind, make, items in ((Kind.NEWS, news_item, news), (Kind.CASE, case, cases)):
        for source_id, department, day, accepted in items:
            record_id = post(store, kind, make(source_id, department=department, published_on=day))
            for target, when in accepted.items():
                publish(store, record_id, target, at(when))
    lists: list[tuple[str, str, str, str, tuple[str, ...]]] = [
        ("R1", "建工科", "red", "2026-05-10", ("municipal",)),
        ("B1", "建工科", "black", "2026-06-01", ("national", "provincial")),
        ("B2", "房监科", "black", "2026-09-20", ()),
        ("R2", "房监科", "red", "2025-11-01", ("municipal",)),
    ]
    for source_id, department, colour, day, targets in lists:
        data = list_change(source_id, department=department, list=colour, effective_date=day)
        record_id = post(store, Kind.LIST_CHANGE, data)
        for target in targets:
            publish(store, record_id, target, at(day) + dt.timedelta(days=1))
    post(
        store, Kind.LICENCE, licence("L1", department="行政审批科", decision_date="2026-08-01", valid_from="2026-08-01")
    )


J, F, X, B = "建工科", "房监科", "行政审批科", "全局"
PORTAL, MUNICIPAL = "门户网站工作动态（篇）", "向信用怀化推送工作动态（篇，全局）"
# (期间, 科室, 任务, 目标, 完成, 差额, 达标情况), from the hand count in the module docstring.
MONTHLY = [
    ["2026-07", J, PORTAL, 1, 2, 0, "达标"],
    ["2026-07", F, PORTAL, 1, 0, 1, "未达标"],
    ["2026-07", X, PORTAL, 1, 0, 1, "未达标"],
    ["2026-07", B, MUNICIPAL, 2, 2, 0, "达标"],
    ["2026-08", J, PORTAL, 1, 0, 1, "未达标"],
    ["2026-08", F, PORTAL, 1, 1, 0, "达标"],
    ["2026-08", X, PORTAL, 1, 0, 1, "未达标"],
    ["2026-08", B, MUNICIPAL, 2, 1, 1, "未达标"],
    ["2026-09", J, PORTAL, 1, 0, 1, "未达标"],
    ["2026-09", F, PORTAL, 1, 1, 0, "达标"],
    ["2026-09", X, PORTAL, 1, 0, 1, "未达标"],
    ["2026-09", B, MUNICIPAL, 2, 2, 0, "达标"],
]
CASES, RED, BLACK = "典型案例（个）", "红名单推送（次）", "黑名单推送（次）"
YEARLY = [
    ["2026", J, CASES, 1, 1, 0, "达标"],
    ["2026", J, RED, 1, 1, 0, "达标"],
    ["2026", J, BLACK, 1, 1, 0, "达标"],
    ["2026", F, CASES, 1, 0, 1, "未达标"],
    ["2026", F, RED, 1, 0, 1, "未达标"],
    ["2026", F, BLACK, 1, 0, 1, "未达标"],
    ["2026", X, CASES, 1, 0, 1, "未达标"],
    ["2026", X, RED, 1, 0, 1, "未达标"],
    ["2026", X, BLACK, 1, 0, 1, "未达标"],
]


def report(store: Store) -> dict[str, Any]:
    return build_report(store, parse_period("2026-Q3"), as_of=AS_OF, now=NOW)


def plain(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [r["period"], r["department"], r["label"], r["target"], r["actual"], r["missing"], r["status"]] for r in rows
    ]


def test_a_seeded_year_gives_the_hand_counted_task_tables(store: Store) -> None:
    seed(store)
    data = report(store)
    assert plain(data["tasks"]["monthly"]) == MONTHLY
    assert plain(data["tasks"]["yearly"]) == YEARLY
    assert all(r["met"] == (r["status"] == "达标") for r in data["tasks"]["yearly"])
    # articles have no deadline: they count for the quotas, not in the 公示率 (L1's four targets only)
    assert data["summary"]["total"]["counted"] == 4


def test_the_same_figures_in_json_csv_xlsx_html_and_the_bulletin(store: Store) -> None:
    seed(store)
    data = report(store)

    parsed = orjson.loads(to_json(data))
    assert plain(parsed["tasks"]["monthly"]) == MONTHLY and plain(parsed["tasks"]["yearly"]) == YEARLY

    rows = list(csv.reader(io.StringIO(to_csv(data)[3:].decode("utf-8"))))

    def csv_block(title: str) -> list[list[Any]]:
        start = rows.index([title, "2026-Q3"]) + 2
        end = next((i for i in range(start, len(rows)) if not rows[i]), len(rows))
        return [[*r[:3], int(r[3]), int(r[4]), int(r[5]), r[6]] for r in rows[start:end]]

    assert rows[rows.index(["月度任务", "2026-Q3"]) + 1] == ["期间", "科室", "任务", "目标", "完成", "差额", "达标情况"]
    assert csv_block("月度任务") == MONTHLY and csv_block("年度任务") == YEARLY

    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(data)))
    for title, expected in (("月度任务", MONTHLY), ("年度任务", YEARLY)):
        sheet = [list(r) for r in book[title].iter_rows(min_row=2, values_only=True)]
        assert sheet == expected, title  # targets and actuals are number cells

    tree = lxml.html.fromstring(to_html(data))
    for name, expected in (("monthly_tasks", MONTHLY), ("yearly_tasks", YEARLY)):
        cells = [
            [td.text_content() for td in tr.findall("td")]
            for tr in tree.xpath(f"//table[@data-table='{name}']/tbody/tr")
        ]
        assert cells == [[str(c) for c in row] for row in expected], name
    unmet = tree.xpath("//table[@data-table='yearly_tasks']//td[@class='unmet']")
    assert len(unmet) == sum(row[-1] == "未达标" for row in YEARLY)  # shown in red

    bulletin = docx.Document(io.BytesIO(to_docx(data)))
    tables = [[[c.text for c in row.cells] for row in t.rows] for t in bulletin.tables]
    for expected in (MONTHLY, YEARLY):
        assert [[str(c) for c in row] for row in expected] in [t[1:] for t in tables]
    text = "\n".join(p.text for p in bulletin.paragraphs)
    assert (
        "统计截至 2026-09-30。未达标：" in text
        and "房监科（2026 典型案例（个）差1）" in text
        and "全局（2026-08 向信用怀化推送工作动态（篇，全局）差1）" in text
    )


def test_targets_come_from_the_settings(store: Store) -> None:
    seed(store)
    clock = ManualClock(at("2026-09-30"))
    settings = Settings(database_url="sqlite://", quotas=QuotaSettings(portal_news_per_month=2, cases_per_year=0))
    keeper = Housekeeping(settings, store, clock, deadlines.from_settings(settings.deadlines), dict)
    tables = keeper.task_tables("2026-07")
    assert [(r.department, r.target, r.actual, r.status) for r in tables.monthly if r.task == "portal_news"] == [
        (J, 2, 2, "达标"),
        (F, 2, 0, "未达标"),
        (X, 2, 0, "未达标"),
    ]
    assert all(r.met for r in tables.yearly if r.task == "cases")  # a target of 0 is always met
    stored = keeper.compute_report(parse_period("2026-07"))
    assert stored["tasks"]["monthly"][0]["target"] == 2


def test_month_end_at_risk_from_the_fifth_working_day_before_month_end(store: Store) -> None:
    # September 2026's last working days: 30, 29, 28, [25 中秋 and the weekend off], 24, 23 → the fifth before
    # month end is Wed 09-23; Tue 09-22 is the sixth. A weekday count (ignoring the holiday) would say 09-24.
    seed(store)
    settings = Settings(database_url="sqlite://")
    clock = ManualClock(at("2026-09-22", hour=23))
    keeper = Housekeeping(settings, store, clock, deadlines.from_settings(settings.deadlines), dict)
    sixth = keeper.at_risk()["quotas"]
    assert sixth == {"window_from": dt.date(2026, 9, 23), "items": []}

    clock.advance(dt.timedelta(hours=1))  # 09-23 00:00 in Huaihua
    fifth = keeper.at_risk()["quotas"]
    assert fifth["window_from"] == dt.date(2026, 9, 23)
    # As of 09-23: 建工科 has no September article accepted on the portal (N6 is accepted on 10-02), 行政审批科
    # none at all; 房监科 has N7; the bureau has N7 and N8 on 信用怀化 (2 of 2).
    assert [(q["department"], q["task"], q["target"], q["actual"], q["missing"]) for q in fifth["items"]] == [
        (J, "portal_news", 1, 0, 1),
        (X, "portal_news", 1, 0, 1),
    ]
    clock.advance(dt.timedelta(days=3))  # Sat 09-26, a day off inside the window
    assert len(keeper.at_risk()["quotas"]["items"]) == 2
    clock.advance(dt.timedelta(days=5))  # Thu 10-01: a new month, its window not open
    assert keeper.at_risk()["quotas"] == {"window_from": dt.date(2026, 10, 26), "items": []}


def test_the_at_risk_api_lists_the_month_end_shortfalls(
    client: httpx.Client, store: Store, operator_key: str, clock: ManualClock
) -> None:
    seed(store)
    clock.advance(at("2026-09-22", hour=12) - clock.now())  # the sixth working day before month end
    early = client.get("/api/v1/deliveries/at-risk", headers=bearer(operator_key)).json()
    assert early["quotas"] == {"window_from": "2026-09-23", "items": []}
    clock.advance(dt.timedelta(days=1))  # the fifth
    items = client.get("/api/v1/deliveries/at-risk", headers=bearer(operator_key)).json()["quotas"]["items"]
    assert [(q["department"], q["period"], q["label"], q["missing"], q["status"]) for q in items] == [
        (J, "2026-09", PORTAL, 1, "未达标"),
        (X, "2026-09", PORTAL, 1, "未达标"),
    ]


def test_the_cli_at_risk_names_what_is_missing(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command in-process over this test's database, with only the wall clock pinned (the CLI reads it
    through SystemClock); e2e tests run the process itself."""
    from gateway import cli
    from gateway.clock import SystemClock

    seed(store)
    monkeypatch.setenv("CREDIT_GATEWAY_DATABASE_URL", settings.database_url)
    monkeypatch.setattr(SystemClock, "now", lambda self: at("2026-09-28"))
    opened: list[Database] = []  # a CLI process closes its pool by exiting; in-process the test closes it
    init = Database.__init__

    def tracked(self: Database, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(Database, "__init__", tracked)
    try:
        result = CliRunner().invoke(cli.app, ["deliveries", "at-risk"])
    finally:
        for db in opened:
            db.dispose()
    assert result.exit_code == 0, result.output
    shortfalls = [line for line in result.stdout.splitlines() if "门户网站工作动态" in line]
    assert len(shortfalls) == 2 and "建工科" in shortfalls[0] and "行政审批科" in shortfalls[1]
    assert all("2026-09" in line for line in shortfalls)
    assert "2 monthly quotas short (month-end window from 2026-09-23)" in result.stderr


def test_a_month_the_calendar_does_not_know_leaves_the_deliveries_answering(store: Store) -> None:
    settings = Settings(database_url="sqlite://", deadlines=DeadlineSettings(provisional=False))
    rules = deadlines.from_settings(settings.deadlines)
    keeper = Housekeeping(settings, store, ManualClock(at("2027-01-27")), rules, dict)
    view = keeper.at_risk(workdays=0)  # due today or overdue: no calendar needed for the deliveries
    assert view["items"] == [] and view["quotas"]["items"] == []
    assert "no working-day schedule for 2027" in view["quotas"]["calendar_missing"]


def test_a_year_report_lists_the_months_begun_by_its_as_of_day(store: Store) -> None:
    seed(store)
    data = build_report(store, parse_period("2026"), as_of=AS_OF, now=NOW)
    months = sorted({r["period"] for r in data["tasks"]["monthly"]})
    assert months == [f"2026-{m:02d}" for m in range(1, 10)]  # January to September; October not begun
    june = {(r["department"], r["task"]): r["actual"] for r in data["tasks"]["monthly"] if r["period"] == "2026-06"}
    assert june == {(J, "portal_news"): 0, (F, "portal_news"): 0, (X, "portal_news"): 1, (B, "municipal_news"): 0}
    assert plain(data["tasks"]["yearly"]) == YEARLY  # the same year, the same yearly tasks
