"""The plan's quotas (月度任务, 年度任务) as a pure function of counts, targets and the working-day calendar.

The 2020 plan (三(四)2–4) holds the bureau to a few countable duties besides 公示率:

* each department publishes at least one work-news article (工作动态) a month on the bureau's website (portal);
* the bureau as a whole pushes at least two work-news articles a month to 信用怀化 (municipal);
* each department pushes at least one typical case (典型案例) a year;
* each department pushes red-list and black-list data (红名单, 黑名单) at least once a year each.

This module knows nothing of storage: the caller counts what was accepted (``Tally``) and names the departments;
the answer is one ``TaskRow`` per (period, department, task) with its target, actual and 达标/未达标. The month-end
rule (a department still short of its monthly quota is at risk in the month's last N working days) is here too,
counted on the project's working-day calendar, because "the fifth working day before month end" moves with
weekends, holidays and make-up days.
"""

from __future__ import annotations

import datetime as dt
from calendar import monthrange
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

BUREAU = "全局"  # the department column of a bureau-wide task
PORTAL_NEWS, MUNICIPAL_NEWS, CASES, RED_LIST, BLACK_LIST = (
    "portal_news",
    "municipal_news",
    "cases",
    "red_list",
    "black_list",
)
MONTHLY_TASKS = (PORTAL_NEWS, MUNICIPAL_NEWS)
YEARLY_TASKS = (CASES, RED_LIST, BLACK_LIST)
LABELS = {
    PORTAL_NEWS: "门户网站工作动态（篇）",
    MUNICIPAL_NEWS: "向信用怀化推送工作动态（篇，全局）",
    CASES: "典型案例（个）",
    RED_LIST: "红名单推送（次）",
    BLACK_LIST: "黑名单推送（次）",
}
MET, UNMET = "达标", "未达标"
Scope = Literal["month", "year"]


class Calendar(Protocol):
    def is_workday(self, day: dt.date) -> bool: ...


@dataclass(frozen=True, slots=True)
class QuotaTargets:
    """How many of each the plan asks for; the defaults are the plan's (settings may change them)."""

    portal_news_per_month: int = 1  # per department
    municipal_news_per_month: int = 2  # bureau-wide
    cases_per_year: int = 1  # per department
    red_list_per_year: int = 1  # per department
    black_list_per_year: int = 1  # per department

    def of(self, task: str) -> int:
        return {
            PORTAL_NEWS: self.portal_news_per_month,
            MUNICIPAL_NEWS: self.municipal_news_per_month,
            CASES: self.cases_per_year,
            RED_LIST: self.red_list_per_year,
            BLACK_LIST: self.black_list_per_year,
        }[task]


@dataclass(slots=True)
class Tally:
    """What was accepted, already counted: months are ``YYYY-MM`` strings."""

    portal_news: dict[tuple[str, str], int] = field(default_factory=dict)  # (department, month) → articles
    municipal_news: dict[str, int] = field(default_factory=dict)  # month → articles, bureau-wide
    cases: dict[str, int] = field(default_factory=dict)  # department → cases in the year
    red_list: dict[str, int] = field(default_factory=dict)  # department → red-list changes pushed in the year
    black_list: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskRow:
    scope: Scope
    period: str  # YYYY-MM for a monthly task, YYYY for a yearly one
    department: str  # BUREAU for a bureau-wide task
    task: str
    target: int
    actual: int

    @property
    def met(self) -> bool:
        return self.actual >= self.target

    @property
    def missing(self) -> int:
        return max(self.target - self.actual, 0)

    @property
    def label(self) -> str:
        return LABELS[self.task]

    @property
    def status(self) -> str:
        return MET if self.met else UNMET

    def as_dict(self) -> dict[str, object]:
        return {
            "scope": self.scope,
            "period": self.period,
            "department": self.department,
            "task": self.task,
            "label": self.label,
            "target": self.target,
            "actual": self.actual,
            "missing": self.missing,
            "met": self.met,
            "status": self.status,
        }


def month_label(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def monthly_tasks(
    tally: Tally, months: Iterable[str], departments: Iterable[str], targets: QuotaTargets
) -> list[TaskRow]:
    """Per month: each department's portal articles, then the bureau's articles to 信用怀化."""
    names = sorted(set(departments))
    rows = []
    for month in months:
        rows += [
            TaskRow("month", month, d, PORTAL_NEWS, targets.portal_news_per_month, tally.portal_news.get((d, month), 0))
            for d in names
        ]
        rows.append(
            TaskRow(
                "month",
                month,
                BUREAU,
                MUNICIPAL_NEWS,
                targets.municipal_news_per_month,
                tally.municipal_news.get(month, 0),
            )
        )
    return rows


def yearly_tasks(tally: Tally, year: int, departments: Iterable[str], targets: QuotaTargets) -> list[TaskRow]:
    """Per department: typical cases, red-list and black-list pushes in the year."""
    counts: Mapping[str, Mapping[str, int]] = {
        CASES: tally.cases,
        RED_LIST: tally.red_list,
        BLACK_LIST: tally.black_list,
    }
    return [
        TaskRow("year", str(year), d, task, targets.of(task), counts[task].get(d, 0))
        for d in sorted(set(departments))
        for task in YEARLY_TASKS
    ]


def last_day(day: dt.date) -> dt.date:
    return day.replace(day=monthrange(day.year, day.month)[1])


def month_end_window(day: dt.date, calendar: Calendar, workdays: int) -> dt.date:
    """The first day of the month's last ``workdays`` working days (the n-th working day before month end,
    counting the last working day as the first); a month with fewer working days starts on its first day."""
    current, seen, start = last_day(day), 0, day.replace(day=1)
    while current >= day.replace(day=1):
        if calendar.is_workday(current):
            seen += 1
            if seen == workdays:
                return current
        current -= dt.timedelta(days=1)
    return start


def in_month_end_window(today: dt.date, calendar: Calendar, workdays: int) -> bool:
    """Whether ``today`` lies in its month's last ``workdays`` working days (weekends and holidays among them
    too, once the window has begun); never before the window's first working day."""
    return workdays > 0 and today >= month_end_window(today, calendar, workdays)


def shortfalls(rows: Iterable[TaskRow], month: str) -> list[TaskRow]:
    """The monthly tasks of ``month`` not met yet: what the at-risk view lists."""
    return [r for r in rows if r.scope == "month" and r.period == month and not r.met]
