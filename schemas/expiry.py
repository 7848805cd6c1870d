"""Publication-period expiry: when a penalty or a list entry stops being public. Pure; the job is in housekeeping.

A penalty's 公示截止期 is the source's ``publish_until`` when given; otherwise it is computed from the rule set
in force on the decision date (``JobSettings.period_rules``, by effective date): the longest period among the
decision's penalty categories, counted in months from the decision date. A list entry (``action`` add) ends at
its ``expiry_date``. The record is withdrawn from every target the day after the end date (reason
``period_ended``): the end date itself is still inside the period.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field


class PeriodRuleSet(BaseModel):
    """How long a penalty stays public when the source gives no 公示截止期, for decisions from ``effective_from``.

    The longest period of the decision's penalty categories applies (STANDARDS.md §3); months count from the
    decision date.
    """

    name: str
    effective_from: dt.date
    default_months: int = Field(ge=0, le=120)
    months_by_category: dict[str, int] = Field(default_factory=dict)


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus calendar months, clamped to the month's end (2026-08-31 + 6 → 2027-02-28)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def rule_set_for(decided_on: dt.date, rule_sets: Sequence[PeriodRuleSet]) -> PeriodRuleSet | None:
    """The rule set in force on the decision date: the latest whose ``effective_from`` is on or before it."""
    applicable = [r for r in rule_sets if r.effective_from <= decided_on]
    return max(applicable, key=lambda r: r.effective_from) if applicable else None


def penalty_end(content: Mapping[str, Any], rule_sets: Sequence[PeriodRuleSet]) -> tuple[dt.date, str] | None:
    """The penalty's last day of publication and where it came from, or None when no rule set covers it."""
    if content.get("publish_until"):
        return dt.date.fromisoformat(content["publish_until"]), "publish_until"
    decided_on = dt.date.fromisoformat(content["decision_date"])
    rules = rule_set_for(decided_on, rule_sets)
    if rules is None:
        return None
    categories = content.get("penalty_categories") or []
    months = max((rules.months_by_category.get(c, rules.default_months) for c in categories), default=0)
    return add_months(decided_on, months or rules.default_months), rules.name


def list_entry_end(content: Mapping[str, Any]) -> tuple[dt.date, str] | None:
    if content.get("action") == "add" and content.get("expiry_date"):
        return dt.date.fromisoformat(content["expiry_date"]), "expiry_date"
    return None


def expired(kind: str, content: Mapping[str, Any], today: dt.date, rule_sets: Sequence[PeriodRuleSet]) -> str | None:
    """A note for the withdrawal when the record's publication period ended before ``today``; None otherwise."""
    end = penalty_end(content, rule_sets) if kind == "penalties" else list_entry_end(content)
    if end is None or end[0] >= today:
        return None
    return f"公示期满 {end[0].isoformat()} ({end[1]})"
