"""月度任务 and 年度任务 of a report period: the store's counts put through ``schemas.quotas``.

``task_tables`` is what the report, the at-risk view and the console call; it answers plain values (``TaskRow``).
``section`` is the report's JSON form and ``extra_sections`` the two tables every format renders (the report's
``extra_sections`` hook), so XLSX, HTML, CSV and the 通报 show the same rows the JSON holds.

Who is held to the quotas: the departments named in the settings (``JOBS__REPORT_DEPARTMENTS``) and every
department with any record in the year, so a department that sends licences but no news shows as 未达标.
Months: those of the period that have begun by the as-of day (a yearly report built in May lists January to May).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from outbox import quotas as facts
from outbox.store import Store
from schemas.calendar import end_of_day
from schemas.periods import Period
from schemas.quotas import (
    BUREAU,
    QuotaTargets,
    Tally,
    TaskRow,
    last_day,
    month_label,
    monthly_tasks,
    yearly_tasks,
)

MONTHLY_TITLE, YEARLY_TITLE = "月度任务", "年度任务"
HEADERS = ["期间", "科室", "任务", "目标", "完成", "差额", "达标情况"]
DEFINITION = (
    "月度任务、年度任务：按信用体系建设工作方案三（四）2—4，各科室每月在局门户网站发布工作动态（篇）、"
    "全局每月向信用怀化推送工作动态（篇）、各科室每年推送典型案例（个）及红名单、黑名单（次）；"
    "以目标平台受理为准（工作动态按门户网站、信用怀化分别计；典型案例、红黑名单以至少一个目标平台受理计），"
    "按记录日期（文章发布日期、认定/移出日期）归入月份或年度，计至统计截至日结束。"
)


@dataclass(frozen=True, slots=True)
class TaskTables:
    monthly: list[TaskRow]
    yearly: list[TaskRow]
    as_of: dt.date
    # 年度记录: per department, the year's records by kind and its red/black pushes (the report's ``quotas``)
    records: list[dict[str, Any]]


def months_of(period: Period, as_of: dt.date) -> list[str]:
    """The months of the period begun by ``as_of`` (a day period: its own month); at least the first."""
    out: list[str] = []
    day = period.start.replace(day=1)
    while day <= period.end and (day <= as_of or not out):
        out.append(month_label(day))
        day = last_day(day) + dt.timedelta(days=1)
    return out


@dataclass(slots=True)
class Facts:
    tally: Tally
    records: dict[tuple[str, str], int]  # (department, kind) → records of the year, every kind


def count(store: Store, year: int, months: Sequence[str], as_of: dt.date, *, alongside: bool = False) -> Facts:
    """One read: the year's accepted articles and list changes, and its records per department and kind.
    ``alongside``: another read runs at the same time (a report's standings), so this one keeps to one core."""
    start, end, cutoff = dt.date(year, 1, 1), dt.date(year, 12, 31), end_of_day(as_of)

    def read(conn: Connection) -> tuple[Any, dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        if alongside:
            facts.without_parallel_workers(conn)
        articles = facts.accepted_articles(conn, decided_from=start, decided_to=end, published_before=cutoff)
        lists = facts.accepted_list_changes(conn, decided_from=start, decided_to=end, published_before=cutoff)
        return articles, lists, facts.year_counts(conn, decided_from=start, decided_to=end)

    articles, lists, records = store.db.read(read)
    tally = Tally()
    portal: dict[tuple[str, str], set[int]] = {}
    municipal: dict[str, set[int]] = {}
    cases: dict[str, set[int]] = {}
    for record_id, kind, department, day, target in articles:
        month = month_label(day)
        if kind == "news" and target == "portal":
            portal.setdefault((department, month), set()).add(record_id)
        elif kind == "news" and target == "municipal":
            municipal.setdefault(month, set()).add(record_id)
        elif kind == "cases":
            cases.setdefault(department, set()).add(record_id)
    tally.portal_news = {key: len(ids) for key, ids in portal.items() if key[1] in months}
    tally.municipal_news = {month: len(ids) for month, ids in municipal.items() if month in months}
    tally.cases = {department: len(ids) for department, ids in cases.items()}
    tally.red_list = {d: n for (d, colour), n in lists.items() if colour == "red"}
    tally.black_list = {d: n for (d, colour), n in lists.items() if colour == "black"}
    return Facts(tally, records)


def yearly_records(found: Facts, year: int, held: Iterable[str], targets: QuotaTargets) -> list[dict[str, Any]]:
    """年度记录 rows: red and black pushes beside the year's commitments, penalties and licences."""
    out = []
    for name in sorted(held):
        red, black = found.tally.red_list.get(name, 0), found.tally.black_list.get(name, 0)
        kinds = {kind: n for (department, kind), n in found.records.items() if department == name}
        out.append(
            {
                "department": name,
                "year": year,
                "red": red,
                "black": black,
                "commitments": kinds.get("commitments", 0),
                "penalties": kinds.get("penalties", 0),
                "licences": kinds.get("licences", 0),
                "met": red >= targets.red_list_per_year and black >= targets.black_list_per_year,
            }
        )
    return out


def task_tables(
    store: Store,
    period: Period,
    *,
    as_of: dt.date,
    departments: Sequence[str] = (),
    targets: QuotaTargets,
    alongside: bool = False,
) -> TaskTables:
    """The period's monthly tasks (each begun month) and its year's yearly tasks, counted as of ``as_of``
    (``alongside``: see ``count``)."""
    months = months_of(period, as_of)
    found = count(store, period.year, months, as_of, alongside=alongside)
    held = (set(departments) | {department for department, _ in found.records}) - {BUREAU}
    return TaskTables(
        monthly=monthly_tasks(found.tally, months, held, targets),
        yearly=yearly_tasks(found.tally, period.year, held, targets),
        as_of=as_of,
        records=yearly_records(found, period.year, held, targets),
    )


def section(tables: TaskTables) -> dict[str, Any]:
    """The report's ``tasks``: every row as plain values, and the definition."""
    return {
        "definition": DEFINITION,
        "as_of": tables.as_of.isoformat(),
        "monthly": [r.as_dict() for r in tables.monthly],
        "yearly": [r.as_dict() for r in tables.yearly],
    }


def cells(row: dict[str, Any]) -> list[Any]:
    return [row["period"], row["department"], row["label"], row["target"], row["actual"], row["missing"], row["status"]]


def _note(rows: list[dict[str, Any]], as_of: str) -> str:
    unmet = [f"{r['department']}（{r['period']} {r['label']}差{r['missing']}）" for r in rows if not r["met"]]
    return f"统计截至 {as_of}。" + ("未达标：" + "；".join(unmet) + "。" if unmet else "均已达标。")


def extra_sections(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The two tables, in the shape every renderer draws (``{"key", "title", "headers", "rows", "note"}``)."""
    return [
        {
            "key": f"{key}_tasks",
            "title": title,
            "headers": HEADERS,
            "rows": [cells(r) for r in data[key]],
            "note": _note(data[key], data["as_of"]),
        }
        for key, title in (("monthly", MONTHLY_TITLE), ("yearly", YEARLY_TITLE))
    ]
