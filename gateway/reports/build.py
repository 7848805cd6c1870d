"""Assemble a 公示率 report from the store's SQL aggregates into one JSON-able document.

The definitions travel inside the report, in plain words, so a file forwarded to leadership explains itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.reports import tasks
from gateway.reports.joint import joint_measures
from outbox.rates import Counts, Group
from outbox.store import Store
from schemas.calendar import ZONE, end_of_day
from schemas.enums import Kind
from schemas.periods import Period, months_back
from schemas.quotas import QuotaTargets

DEFINITIONS = {
    "period": "统计范围：决定日期（信用承诺为承诺作出日期，红黑名单为认定/移出日期）在本期内的记录。",
    "records": "记录数：本期决定的记录条数。每条记录须推送到每个目标平台，每个（记录，目标平台）为一次投递。",
    "deliveries": "投递数：按（记录，目标平台）计；以下各项均按投递计数。",
    "on_time": "按时公示：目标平台的业务受理结果在公示期限当日（北京时间）结束前到达。",
    "late": "超期公示：已公示，但晚于公示期限。",
    "overdue": "逾期未公示：尚未公示，且已过公示期限。",
    "pending": "待公示：尚未公示，也未到公示期限；列出，不计入公示率。",
    "not_applicable": "不计：在公示期限前撤销且未曾公示；不计入公示率。",
    "unknown": "无法计算：工作日历缺少该年度，无法确定公示期限；列出，不计入公示率。",
    "rate": "公示率 = 按时公示 ÷（按时公示 + 超期公示 + 逾期未公示）。本期无计入投递时不显示公示率（不视为100%）。",
    "provisional": (
        "暂定期限：该年度放假安排尚未公布时，按法定节假日和周末（不含调休上班日）推算的公示期限；"
        "与其他期限一样判定，放假安排公布后重新计算。"
    ),
    "imported": "存量导入：通过 credit-gateway import 导入的历史记录，而非来源系统经接口报送。",
    "quota": "年度记录：各科室本年度决定的各类记录条数，及其中推送（以至少一个目标平台受理为准）的红名单、黑名单变更。",
    "tasks": tasks.DEFINITION,
    "time": "时间均为北京时间（Asia/Shanghai）。",
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


def local_time(moment: dt.datetime) -> str:
    """A moment as a reader in Huaihua reads it: Beijing time, to the second."""
    return moment.astimezone(ZONE).replace(microsecond=0).isoformat()


def _jsonable(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The listed pairs (``rates.listed``'s rows, the report's own) as text, changed in place: a month's sheets
    hold tens of thousands, so each dated column is converted by name rather than every value tested for its type."""
    for pair in pairs:
        del pair["record_id"]
        pair["decided_on"] = pair["decided_on"].isoformat()
        due, published = pair["due_date"], pair["published_at"]
        pair["due_date"] = None if due is None else due.isoformat()
        pair["published_at"] = None if published is None else local_time(published)
    return pairs


def build_report(
    store: Store,
    period: Period,
    *,
    as_of: dt.date,
    now: dt.datetime,
    departments: Sequence[str] = (),
    trend_months: int = 12,
    quota_targets: QuotaTargets | None = None,
    progress: Progress = _none,
) -> dict[str, Any]:
    window = {"decided_from": period.start, "decided_to": period.end, "as_of": as_of, "as_of_end": end_of_day(as_of)}
    trend_from = months_back(period.end, trend_months)
    # The quotas read other rows than the standings: on a connection of their own they run while the standings
    # are counted (PostgreSQL uses both cores; about a third off a full report over a million deliveries).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-quotas") as pool:
        quota_tables = pool.submit(
            tasks.task_tables,
            store,
            period,
            as_of=as_of,
            departments=departments,
            targets=quota_targets or QuotaTargets(),
            alongside=True,
        )
        by_month, listed = _standings(store, period, trend_from, as_of)
        tables = quota_tables.result()
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
    overdue, late = listed["overdue"], listed["late"]
    progress("overdue and late")
    records = store.record_counts(decided_from=period.start, decided_to=period.end)
    imported = store.imported(decided_from=period.start, decided_to=period.end)
    task_data = tasks.section(tables)
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
                "records": sum(n for (d, _), n in records.items() if d == name),
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
        "generated_at": local_time(now),
        "definitions": DEFINITIONS,
        "summary": {
            "records": sum(records.values()),
            "records_by_kind": _records_by_kind(records),
            "total": total.as_dict(),
            "by_target": _total(groups, lambda g: g.target),
            "by_kind": _total(groups, lambda g: g.kind),
        },
        "imported": imported,
        "by_department": by_department,
        "groups": [
            {"target": g.target, "kind": g.kind, "department": g.department, **g.counts.as_dict()} for g in groups
        ],
        "overdue": _jsonable(overdue),
        "late": _jsonable(late),
        "quotas": tables.records,
        "tasks": task_data,
        "trend": [{"month": month, **counts.as_dict()} for month, counts in trend.items()],
        "joint_measures": joint_measures(store, period),
        # Further sections a later feature adds (e.g. 联合奖惩 figures from credit checks): each
        # {"key", "title", "headers": [...], "rows": [[...], ...], "note"?}; every format renders them as a table.
        "extra_sections": tasks.extra_sections(task_data),
    }


def _standings(
    store: Store, period: Period, trend_from: dt.date, as_of: dt.date
) -> tuple[dict[str, list[Group]], dict[str, list[dict[str, Any]]]]:
    return store.report_standings(
        decided_from=min(trend_from, period.start),
        decided_to=period.end,
        as_of=as_of,
        as_of_end=end_of_day(as_of),
        listed_from=period.start,
        listed_to=period.end,
        which=("overdue", "late"),
    )


def _records_by_kind(records: dict[tuple[str, str], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, kind), n in sorted(records.items(), key=lambda item: item[0][1]):
        out[kind] = out.get(kind, 0) + n
    return out


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
