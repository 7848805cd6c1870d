"""The 联合奖惩 section of a report (考评任务 5③): credit checks made and measures taken, per department.

Counted over the checks *made* in the period (``checked_at`` in Asia/Shanghai days), each with the latest measure
recorded for it by the time the report is built:

* 查询次数: checks made; 有记录主体: distinct subjects whose check found anything (any list entry, penalty in its
  period or unfulfilled commitment);
* advice given: 限制 restrict, 审慎 caution, 激励 reward, 无记录 no_record;
* measures taken: 拒绝 refused, 从严审查 strict_review, 快速办理 fast_track, 无影响 no_effect, 其他 other;
* 有记录未录措施: checks that found something and have no measure recorded.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from outbox import checks
from outbox.store import Store
from schemas.calendar import end_of_day
from schemas.periods import Period

ADVICE = ("restrict", "caution", "reward", "no_record")
MEASURES = ("refused", "strict_review", "fast_track", "no_effect", "other")
HEADERS = [
    "科室",
    "查询次数",
    "有记录主体",
    "建议限制",
    "建议审慎",
    "建议激励",
    "无记录",
    "拒绝办理",
    "从严审查",
    "快速办理",
    "无影响",
    "其他措施",
    "有记录未录措施",
]
DEFINITION = (
    "联合奖惩：本期（北京时间）作出的审批前信用查询，按科室统计：有记录主体数、给出的建议、"
    "每次查询最近录入的联合奖惩措施，以及查到记录但尚未录入措施的查询次数。"
)


def _empty() -> dict[str, Any]:
    return {
        "checks": 0,
        "subjects_with_findings": 0,
        "advice": dict.fromkeys(ADVICE, 0),
        "measures": dict.fromkeys(MEASURES, 0),
        "findings_without_measure": 0,
    }


def joint_measures(store: Store, period: Period) -> dict[str, Any]:
    """The section's data: one entry per department that made checks, and the total."""
    start, end = end_of_day(period.start - dt.timedelta(days=1)), end_of_day(period.end)
    rows = store.db.read(lambda conn: checks.rows_between(conn, start=start, end=end))
    departments: dict[str, dict[str, Any]] = {}
    subjects: dict[str, set[str]] = {}
    for row in rows:
        found = any(row["findings"].get(k) for k in ("black_list", "red_list", "penalties", "unfulfilled_commitments"))
        for name in (row["department"], "合计"):
            counts = departments.setdefault(name, _empty())
            counts["checks"] += 1
            counts["advice"][row["advice"]] += 1
            if row["measure"] is not None:
                counts["measures"][row["measure"]] += 1
            if found:
                subjects.setdefault(name, set()).add(row["subject_code"])
                if row["measure"] is None:
                    counts["findings_without_measure"] += 1
    for name, codes in subjects.items():
        departments[name]["subjects_with_findings"] = len(codes)
    total = departments.pop("合计", _empty())
    return {
        "definition": DEFINITION,
        "by_department": [{"department": name, **departments[name]} for name in sorted(departments)],
        "total": total,
    }


def _cells(name: str, c: dict[str, Any]) -> list[Any]:
    return [
        name,
        c["checks"],
        c["subjects_with_findings"],
        *(c["advice"][a] for a in ADVICE),
        *(c["measures"][m] for m in MEASURES),
        c["findings_without_measure"],
    ]


def rows(report: dict[str, Any]) -> list[list[Any]]:
    """The section as table rows (departments, then 合计), for every format; a report made before it: none."""
    section = report.get("joint_measures")
    if not section:
        return []
    return [_cells(d["department"], d) for d in section["by_department"]] + [_cells("合计", section["total"])]


def block(report: dict[str, Any]) -> list[list[Any]]:
    """The section for the CSV: a blank line, its title, its header and its rows (nothing for an older report)."""
    found = rows(report)
    return [[], ["联合奖惩", report["period"]], HEADERS, *found] if found else []
