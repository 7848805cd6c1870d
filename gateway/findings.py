"""What a credit check found and what it advises (CONTRACT.md "Credit checks"). Pure: rows and a day in, findings out.

Local records count when in force on the check's day (Asia/Shanghai): a list entry added, in effect, not past its
``expiry_date`` and not followed by a removal from the same list; a penalty inside its publication period
(``schemas.expiry``: the source's 公示截止期, else the period rules in force on the decision date; a decision no
rule set covers is outside every period); a commitment ``partial`` or ``unfulfilled``. National entries count on
the same terms. An entry both hold is shown once, with both sources: penalties are the same entry when their
decision numbers match, list entries when list, list name and start date match.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.national import SubjectReport
from schemas.expiry import PeriodRuleSet, penalty_end

# 严重失信 penalties (issue 11): 吊销许可证件, 责令停产停业, 责令关闭, 限制从业, 行政拘留.
SERIOUS_CATEGORIES = frozenset(
    {"revoke_licence", "suspend_business", "order_closure", "restrict_employment", "detention"}
)


def is_serious(categories: Iterable[str], marked: Any) -> bool:
    """The source's mark when it gave one; otherwise judged from the categories."""
    if isinstance(marked, bool):
        return marked
    return bool(SERIOUS_CATEGORIES.intersection(categories))


def _key(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _day(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass
class Findings:
    black_list: list[dict[str, Any]] = field(default_factory=list)
    red_list: list[dict[str, Any]] = field(default_factory=list)
    penalties: list[dict[str, Any]] = field(default_factory=list)
    unfulfilled_commitments: list[dict[str, Any]] = field(default_factory=list)
    name: str | None = None

    def as_dict(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "black_list": self.black_list,
            "red_list": self.red_list,
            "penalties": self.penalties,
            "unfulfilled_commitments": self.unfulfilled_commitments,
        }

    def any(self) -> bool:
        return any(self.as_dict().values())


def local_findings(rows: Sequence[Mapping[str, Any]], day: dt.date, rule_sets: Sequence[PeriodRuleSet]) -> Findings:
    found = Findings()
    lists = [r for r in rows if r["kind"] == "list-changes"]
    for row in rows:
        content = row["content"]
        found.name = found.name or (content.get("counterpart") or {}).get("name")
        where = {"source_system": row["source_system"], "source_id": row["source_id"], "department": row["department"]}
        if row["kind"] == "penalties":
            decided = _day(content.get("decision_date"))
            end = penalty_end(content, rule_sets)
            if decided is None or decided > day or end is None or end[0] < day:
                continue
            categories = list(content.get("penalty_categories") or [])
            found.penalties.append(
                {
                    "decision_number": content.get("decision_number"),
                    "unit": content.get("authority"),
                    "decision_date": decided.isoformat(),
                    "publish_until": end[0].isoformat(),
                    "categories": categories,
                    "serious": is_serious(categories, content.get("serious")),
                    "sources": ["local"],
                    "local": where,
                }
            )
        elif row["kind"] == "commitments":
            if content.get("fulfilment") not in ("partial", "unfulfilled"):
                continue
            found.unfulfilled_commitments.append(
                {
                    "matter": content.get("matter"),
                    "commitment_date": content.get("commitment_date"),
                    "fulfilment": content.get("fulfilment"),
                    "unfulfilled_content": content.get("unfulfilled_content"),
                    "unit": content.get("accepting_unit"),
                    "sources": ["local"],
                    "local": where,
                }
            )
        elif row["kind"] == "list-changes" and _in_force(content, lists, day):
            entry = {
                "list": content["list"],
                "list_name": content.get("list_name"),
                "unit": content.get("deciding_unit"),
                "document_number": content.get("document_number"),
                "since": content.get("effective_date"),
                "until": content.get("expiry_date"),
                "sources": ["local"],
                "local": where,
            }
            (found.black_list if content["list"] == "black" else found.red_list).append(entry)
    return found


def _in_force(entry: Mapping[str, Any], lists: Sequence[Mapping[str, Any]], day: dt.date) -> bool:
    """An ``add`` in effect on ``day``, not expired, and not taken off the same list since."""
    since, until = _day(entry.get("effective_date")), _day(entry.get("expiry_date"))
    if entry.get("action") != "add" or since is None or since > day or (until is not None and until < day):
        return False
    for other in lists:
        c = other["content"]
        removed = _day(c.get("effective_date"))
        if (
            c.get("action") == "remove"
            and c.get("list") == entry.get("list")
            and _key(str(c.get("list_name") or "")) == _key(str(entry.get("list_name") or ""))
            and removed is not None
            and since <= removed <= day
        ):
            return False
    return True


def add_national(found: Findings, report: SubjectReport, day: dt.date, rule_sets: Sequence[PeriodRuleSet]) -> None:
    """Merge what the national platform holds in force on ``day``; an entry held locally too gains a source."""
    found.name = found.name or report.name
    for entry in report.lists:
        if (entry.since is not None and entry.since > day) or (entry.until is not None and entry.until < day):
            continue
        bucket = found.black_list if entry.list == "black" else found.red_list
        since = entry.since.isoformat() if entry.since else None
        same = next(
            (
                e
                for e in bucket
                if _key(str(e.get("list_name") or "")) == _key(entry.list_name) and e.get("since") == since
            ),
            None,
        )
        if same is not None:
            _also_national(same)
            continue
        bucket.append(
            {
                "list": entry.list,
                "list_name": entry.list_name,
                "unit": entry.unit,
                "since": since,
                "until": entry.until.isoformat() if entry.until else None,
                "sources": ["national"],
            }
        )
    for penalty in report.penalties:
        end = penalty.publish_until
        if end is None and penalty.decision_date is not None:
            computed = penalty_end(
                {"decision_date": penalty.decision_date.isoformat(), "penalty_categories": list(penalty.categories)},
                rule_sets,
            )
            end = computed[0] if computed else None
        if end is None or end < day or (penalty.decision_date is not None and penalty.decision_date > day):
            continue
        number = _key(penalty.decision_number)
        same = next((p for p in found.penalties if _key(str(p["decision_number"])) == number), None)
        if same is not None:
            _also_national(same)
            same["serious"] = bool(same["serious"] or penalty.serious)
            continue
        found.penalties.append(
            {
                "decision_number": penalty.decision_number,
                "unit": penalty.unit,
                "decision_date": penalty.decision_date.isoformat() if penalty.decision_date else None,
                "publish_until": end.isoformat(),
                "categories": list(penalty.categories),
                "serious": penalty.serious or is_serious(penalty.categories, None),
                "sources": ["national"],
            }
        )


def _also_national(entry: dict[str, Any]) -> None:
    if "national" not in entry["sources"]:
        entry["sources"] = [*entry["sources"], "national"]


def _where(entry: Mapping[str, Any]) -> str:
    return "+".join(entry["sources"])


def _listed(label: str, e: Mapping[str, Any]) -> str:
    unit, since = e.get("unit") or "认定单位不详", e.get("since") or "日期不详"
    return f"{label}「{e['list_name']}」（{unit}，{since} 起，{_where(e)}）"


def _penalised(p: Mapping[str, Any]) -> str:
    unit = p.get("unit") or "处罚机关不详"
    return f"严重失信行政处罚 {p['decision_number']}（{unit}，公示至 {p['publish_until']}，{_where(p)}）"


def advise(found: Findings) -> tuple[str, list[str]]:
    """The advice and the entries that led to it, each named (CONTRACT.md's order of precedence)."""
    black = [_listed("黑名单", e) for e in found.black_list]
    if black:
        return "restrict", black
    serious = [_penalised(p) for p in found.penalties if p["serious"]]
    unfulfilled = [
        f"信用承诺未履行「{c['matter']}」（{c['fulfilment']}，{c.get('commitment_date')}，{_where(c)}）"
        for c in found.unfulfilled_commitments
    ]
    if serious or unfulfilled:
        return "caution", serious + unfulfilled
    negative = found.penalties or found.unfulfilled_commitments
    if found.red_list and not negative:
        return "reward", [_listed("红名单", e) for e in found.red_list]
    return "no_record", []
