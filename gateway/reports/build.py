"""Assemble a 公示率 report from the store's SQL aggregates into one JSON-able document.

The definitions travel inside the report, in plain words, so a file forwarded to leadership explains itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gateway.reports.joint import joint_measures
from gateway.reports.periods import Period, months_back
from outbox.ingest import end_of_day
from outbox.rates import Counts, Group
from outbox.store import Store
from schemas.enums import Kind

DEFINITIONS = {
    "period": (
        "Records whose decision date (决定日期; a commitment's date, a list change's effective date) "
        "falls in the period."
    ),
    "on_time": "按时公示: the target's business acceptance arrived on or before the due date (Asia/Shanghai).",
    "late": "超期公示: published, but after the due date.",
    "overdue": "逾期未公示: not published and the due date has passed.",
    "pending": "待公示: not published and not yet due. Shown, not counted.",
    "not_applicable": "不计: withdrawn before the due date without having been published. Not counted.",
    "unknown": "无法计算: no due date, because the working-day calendar lacks the year. Shown, not counted.",
    "rate": "公示率 = on time / (on time + late + overdue). A period with nothing counted has no rate (not 100%).",
    "quota": "年度任务: each department pushes at least one red-list and one black-list change a year.",
}

STEPS = ("standings and trend", "overdue and late", "quotas")
Progress = Callable[[str], None]


def _none(_: str) -> None:
    return None


def _total(groups: Sequence[Any], key: Callable[[Any], str]) -> dict[str, dict[str, Any]]:
    totals: dict[str, Counts] = {}
    for g in groups:
        totals.setdefault(key(g), Counts()).add(g.counts)
    return {name: c.as_dict() for name, c in sorted(totals.items())}


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value

    return [{k: plain(v) for k, v in row.items() if k != "record_id"} for row in rows]


def build_report(
    store: Store,
    period: Period,
    *,
    as_of: dt.date,
    now: dt.datetime,
    departments: Sequence[str] = (),
    trend_months: int = 12,
    progress: Progress = _none,
) -> dict[str, Any]:
    window = {"decided_from": period.start, "decided_to": period.end, "as_of": as_of, "as_of_end": end_of_day(as_of)}
    trend_from = months_back(period.end, trend_months)
    by_month = store.monthly_standings(**{**window, "decided_from": min(trend_from, period.start)})
    if period.start.day == 1 and _is_month_end(period.end):  # a month, quarter or year: sum its months
        first, last = period.start.strftime("%Y-%m"), period.end.strftime("%Y-%m")
        groups = _merge(g for month, gs in by_month.items() if first <= month <= last for g in gs)
    else:  # a single day: its own query
        groups = store.standings(**window)
    trend: dict[str, Counts] = {}
    for month, gs in by_month.items():
        if month >= trend_from.strftime("%Y-%m"):
            for g in gs:
                trend.setdefault(month, Counts()).add(g.counts)
    progress("standings and trend")
    listed = store.listed(which=("overdue", "late"), **window)
    overdue, late = listed["overdue"], listed["late"]
    progress("overdue and late")
    quotas = store.quotas(year=period.year, departments=departments)
    progress("quotas")

    total = Counts()
    for g in groups:
        total.add(g.counts)
    by_department = []
    for name, counts in _total(groups, lambda g: g.department).items():
        mine = [g for g in groups if g.department == name]
        by_department.append(
            {
                "department": name,
                "counts": counts,
                "by_target": _total(mine, lambda g: g.target),
                "by_kind": _total(mine, lambda g: g.kind),
            }
        )
    return {
        "period": period.label,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "as_of": as_of.isoformat(),
        "generated_at": now.isoformat(),
        "definitions": DEFINITIONS,
        "summary": {
            "total": total.as_dict(),
            "by_target": _total(groups, lambda g: g.target),
            "by_kind": _total(groups, lambda g: g.kind),
        },
        "by_department": by_department,
        "groups": [
            {"target": g.target, "kind": g.kind, "department": g.department, **g.counts.as_dict()} for g in groups
        ],
        "overdue": _jsonable(overdue),
        "late": _jsonable(late),
        "quotas": quotas,
        "trend": [{"month": month, **counts.as_dict()} for month, counts in trend.items()],
        "joint_measures": joint_measures(store, period),
    }


def _is_month_end(day: dt.date) -> bool:
    return (day + dt.timedelta(days=1)).day == 1


def _merge(groups: Iterable[Group]) -> list[Group]:
    """Add up the months' groups into one per (target, kind, department)."""
    merged: dict[tuple[str, str, str], Group] = {}
    for g in groups:
        key = (g.target, g.kind, g.department)
        if key not in merged:
            merged[key] = Group(g.target, g.kind, g.department, Counts())
        merged[key].counts.add(g.counts)
    return [merged[k] for k in sorted(merged, key=lambda k: (k[2], k[1], k[0]))]


def kind_label(value: str) -> str:
    try:
        return Kind.from_code(value).label
    except ValueError:
        return value
