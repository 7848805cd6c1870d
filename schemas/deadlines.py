"""Deadlines and standings: when each delivery is due, and how it stands on a given day. Pure; no I/O.

The rules come from the settings (``DeadlineSettings``): per (target, kind) a number of calendar or working days
after the decision date (决定日期; a commitment's date, a list change's effective date). The defaults are the
bureau's plan: the portal within 7 calendar days, the three platforms within 20 working days.

Whether day 1 is the decision day or the day after is one setting (``day_one``); the default, ``next_day``, is the
usual practice for "N 个工作日内": the count starts the day after the decision takes effect.

A deadline is met when the target's business acceptance arrives on or before the due date, Asia/Shanghai. The
standing of a (record, target) on a day, mirrored exactly by the SQL of ``outbox.rates``:

* ``on_time`` published by the end of the due date; ``late`` published after it;
* ``overdue`` unpublished and the day is past the due date; ``pending`` unpublished and not yet due;
* ``not_applicable`` withdrawn on or before the due date without having been published;
* ``unknown`` no due date could be computed (the calendar lacks the year): shown, never guessed.

A due date counted over a year whose 放假安排 is not published yet is *provisional* (``schemas.calendar``): it is
stored with ``due_date_basis = provisional``, counted like any other, shown as provisional, and recomputed when
the official schedule arrives (``Housekeeping.refresh_due_dates``).
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from schemas.calendar import OutsideCalendar, WorkCalendar, end_of_day, load_calendar, load_overrides, local_day
from schemas.enums import ARTICLE_KINDS, Kind


@dataclass(frozen=True, slots=True)
class DueDate:
    """A delivery's deadline and its basis: ``official`` (a published working-day schedule, or calendar days) or
    ``provisional`` (counted before the year's schedule was published; recomputed when it is)."""

    day: dt.date
    basis: str = "official"


class Now(Protocol):
    """Anything that tells the time (the gateway's injected clock): this floor never reads the wall clock."""

    def now(self) -> dt.datetime: ...


class RuleConfig(Protocol):
    """One deadline rule as the settings hold it."""

    @property
    def target(self) -> str: ...
    @property
    def kinds(self) -> Sequence[Kind]: ...
    @property
    def days(self) -> int: ...
    @property
    def unit(self) -> Unit: ...


class DeadlineConfig(Protocol):
    """The deadline settings (``gateway.settings.DeadlineSettings``), read structurally so this floor stays below
    the gateway."""

    @property
    def day_one(self) -> DayOne: ...
    @property
    def rules(self) -> Sequence[RuleConfig]: ...
    @property
    def overrides_file(self) -> Path | None: ...
    @property
    def provisional(self) -> bool: ...


log = logging.getLogger("gateway.deadlines")


class Standing(enum.StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    OVERDUE = "overdue"
    PENDING = "pending"
    NOT_APPLICABLE = "not_applicable"
    UNKNOWN = "unknown"


COUNTED = (Standing.ON_TIME, Standing.LATE, Standing.OVERDUE)

Unit = Literal["calendar", "working"]
DayOne = Literal["next_day", "decision_day"]


@dataclass(frozen=True, slots=True)
class Rule:
    target: str
    kinds: tuple[Kind, ...]
    days: int
    unit: Unit


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Due dates per (target, kind) on a working-day calendar."""

    rules: Sequence[Rule]
    calendar: WorkCalendar
    day_one: DayOne = "next_day"
    override_files: tuple[Path, ...] = ()  # the operator's tables, re-read by ``reload``
    _memo: dict[tuple[int, str, Kind, dt.date], DueDate | None] = field(default_factory=dict, repr=False, compare=False)
    _warned: set[tuple[int, str, Kind, int]] = field(default_factory=set, repr=False, compare=False)

    def rule_for(self, target: str, kind: Kind) -> Rule | None:
        return next((r for r in self.rules if r.target == target and kind in r.kinds), None)

    def due(self, target: str, kind: Kind, decided_on: dt.date) -> dt.date | None:
        """The due date, or None when no rule covers (target, kind). Raises ``OutsideCalendar``."""
        found = self.due_with_basis(target, kind, decided_on)
        return None if found is None else found.day

    def due_with_basis(self, target: str, kind: Kind, decided_on: dt.date) -> DueDate | None:
        """The due date and whether it stands on an official or a provisional calendar.

        Memoised: every ingest asks for each of its targets, and decision dates repeat across records; counting
        20 working days costs some 30 calendar look-ups. Only successful answers are kept, under the calendar's
        generation, so answers from before a ``reload`` are never used again."""
        key = (self.calendar.generation, target, kind, decided_on)
        if key in self._memo:
            return self._memo[key]
        found = self._compute(target, kind, decided_on)
        if len(self._memo) >= 100_000:
            self._memo.clear()  # old generations' answers, or a very long history: start afresh
        self._memo[key] = found
        return found

    def _compute(self, target: str, kind: Kind, decided_on: dt.date) -> DueDate | None:
        rule = self.rule_for(target, kind)
        if rule is None:
            return None
        start = decided_on - dt.timedelta(days=1) if self.day_one == "decision_day" else decided_on
        if rule.unit == "calendar":
            return DueDate(start + dt.timedelta(days=rule.days), "official")
        day, basis = self.calendar.add_workdays_with_basis(start, rule.days)
        return DueDate(day, basis)

    def reload(self) -> list[int]:
        """Re-read the override tables (a year's schedule may have been added since the start) and use them
        from now on: ingest, reports and the push loop share this object. Returns the years newly known."""
        before = set(self.calendar.overrides)
        self.calendar.replace_overrides(load_overrides(self.override_files))  # a new generation: memo keys move on
        return sorted(set(self.calendar.overrides) - before)

    def due_dates(self, kind: Kind, decided_on: dt.date, targets: Sequence[str]) -> dict[str, DueDate]:
        """Due dates for an ingest's fan-out; a target whose date cannot be computed yet is left out (null)."""
        dates: dict[str, DueDate] = {}
        for target in targets:
            try:
                due = self.due_with_basis(target, kind, decided_on)
            except OutsideCalendar as exc:
                self._not_computable(target, kind, decided_on, exc)
                continue
            if due is not None:
                dates[target] = due
        return dates

    def _not_computable(self, target: str, kind: Kind, decided_on: dt.date, exc: OutsideCalendar) -> None:
        """Once per calendar generation, target, kind and year: every ingest of such a year would say it again."""
        seen = (self.calendar.generation, target, kind, decided_on.year)
        if seen in self._warned:
            return
        self._warned.add(seen)
        fields = {"target": target, "kind": kind.value, "decided_on": decided_on.isoformat(), "reason": str(exc)}
        log.warning(  # stdlib only: the ground floor imports nothing of gateway/ (gateway.logs included)
            "due_date_not_computable target=%s kind=%s decided_on=%s reason=%s",
            *fields.values(),
            extra={"event": "due_date_not_computable", "fields": fields},
        )

    def explain(self, target: str, kind: Kind, decided_on: dt.date) -> str | None:
        """Why a delivery has no due date, in words for the record view; None when it has one."""
        if kind in ARTICLE_KINDS and self.rule_for(target, kind) is None:
            return f"{kind.label} has no publication deadline: the plan counts it as a quota, not in the 公示率"
        try:
            due = self.due(target, kind, decided_on)
        except OutsideCalendar as exc:
            return str(exc)
        return None if due is not None else f"no deadline rule for {kind.value} on {target}"


def standing(
    *,
    due: dt.date | None,
    published_at: dt.datetime | None,
    withdrawn_at: dt.datetime | None,
    on: dt.date,
) -> Standing:
    """How one (record, target) stands at the end of day ``on`` (Asia/Shanghai)."""
    if due is None:
        return Standing.UNKNOWN
    day_end = end_of_day(on)
    if published_at is not None and published_at < day_end:
        return Standing.ON_TIME if published_at < end_of_day(due) else Standing.LATE
    if withdrawn_at is not None and withdrawn_at < min(end_of_day(due), day_end):
        return Standing.NOT_APPLICABLE
    return Standing.OVERDUE if on > due else Standing.PENDING


def rate(counts: Mapping[Standing, int]) -> float | None:
    """公示率 = on time / (on time + late + overdue); None (no rate, not 100%) when nothing is counted."""
    counted = sum(counts.get(s, 0) for s in COUNTED)
    return None if counted == 0 else counts.get(Standing.ON_TIME, 0) / counted


def override_files(settings: DeadlineConfig) -> list[Path]:
    return [settings.overrides_file] if settings.overrides_file else []


def from_settings(settings: DeadlineConfig) -> Deadlines:
    """The deadlines the settings describe, on the shipped calendar plus the operator's override file."""
    files = tuple(override_files(settings))
    calendar = load_calendar(files, provisional=settings.provisional)
    rules = [Rule(r.target, tuple(r.kinds), r.days, r.unit) for r in settings.rules]
    return Deadlines(rules, calendar, settings.day_one, files)


class RiskHorizon:
    """The last day whose deadlines count as at risk today: ``workdays`` working days ahead, once per local day.

    The push loop leases deliveries due by then first. When the calendar does not reach that far the horizon is
    today (overdue and due-today still go first); a count of working days is never guessed.
    """

    def __init__(self, calendar: WorkCalendar, workdays: int, clock: Now) -> None:
        self.calendar, self.workdays, self.clock = calendar, workdays, clock
        self._day: dt.date | None = None
        self._horizon: dt.date | None = None

    def __call__(self) -> dt.date:
        today = local_day(self.clock.now())
        if today != self._day or self._horizon is None:
            try:
                horizon = self.calendar.add_workdays(today, self.workdays) if self.workdays else today
            except OutsideCalendar:
                horizon = today
            self._day, self._horizon = today, horizon
        return self._horizon
