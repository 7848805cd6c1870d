"""The Chinese working-day calendar deadlines are counted on.

A 工作日 is Monday to Friday, minus the statutory holidays and bridge days of the State Council's yearly 放假安排,
plus the weekend days that notice turns into make-up working days (调休上班). Weekday arithmetic alone is wrong
several times a year, so the days come from the maintained ``chinese-calendar`` package (pinned), and from a
project-owned override table (``schemas/data/workdays.toml``, plus an operator file named in the settings) so a
new year's schedule can be entered the day the State Council publishes it, before the package releases it.

A year after the package's last one that no override covers yet (the State Council publishes a year's schedule
in November or December, and decisions taken in December already have deadlines in January) is counted
*provisionally*: weekends and that year's statutory holidays as the ``holidays`` package computes them from the law
(全国年节及纪念日放假办法: the fixed and lunar holidays, plus the 补假 weekday when one falls on a weekend), but
without the make-up working days (调休上班) and bridge days that only the yearly notice declares. Every answer says
which basis it stands on (``Basis``), so a provisional due date is stored as such and recomputed once the
official schedule arrives. Any other unknown year (before the package's first) is an error (``OutsideCalendar``),
never a silent weekday guess.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays

Basis = Literal["official", "provisional"]


ZONE = ZoneInfo("Asia/Shanghai")  # where the bureau is: its days, deadlines and end-of-day are counted here


def end_of_day(day: dt.date) -> dt.datetime:
    """The end of ``day`` in Asia/Shanghai as an exclusive UTC bound: a delivery's ``due_by``, and the cut-off
    of "as it stood on" a day. Published before the end of its due date means on time."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZONE).astimezone(dt.UTC)


def local_day(moment: dt.datetime) -> dt.date:
    """The bureau's day at ``moment`` (deadlines and "no future decision date" are judged in Asia/Shanghai)."""
    return moment.astimezone(ZONE).date()


def start_of_day(day: dt.date) -> dt.datetime:
    """The first moment of ``day`` in Asia/Shanghai."""
    return dt.datetime.combine(day, dt.time(), ZONE)


class OutsideCalendar(LookupError):
    """The calendar has no schedule for this year: add the State Council's 放假安排 to the override table."""

    def __init__(self, day: dt.date) -> None:
        super().__init__(
            f"no working-day schedule for {day.year} (asked about {day.isoformat()}): add the State Council's "
            f"{day.year} 放假安排 to the override table (CREDIT_GATEWAY_DEADLINES__OVERRIDES_FILE)"
        )
        self.day = day


class OverrideError(ValueError):
    """The override table is malformed; the message names the file, the year and the entry."""


@dataclass(frozen=True, slots=True)
class YearSchedule:
    """One year's exceptions to the Monday-to-Friday rule, as the State Council publishes them."""

    year: int
    holidays: frozenset[dt.date]  # weekdays off
    workdays: frozenset[dt.date]  # weekend days on (调休)
    source: str = ""


def _package_years() -> range:
    years = {d.year for d in chinese_calendar.holidays} | {d.year for d in chinese_calendar.workdays}
    return range(min(years), max(years) + 1)


def statutory_holidays(year: int) -> YearSchedule:
    """A year's weekday holidays by the law alone (``holidays``' China calendar: statutory days and their 补假
    weekdays); no make-up working days, which only the State Council's yearly notice declares."""
    days = holidays.country_holidays("CN", years=year)
    off = frozenset(day for day in days if day.year == year and day.weekday() < 5)
    return YearSchedule(year, off, frozenset(), "holidays: statutory days only (provisional)")


@dataclass(slots=True)
class WorkCalendar:
    """Answers "is this a working day" and "the n-th working day after", for the years it knows."""

    overrides: dict[int, YearSchedule] = field(default_factory=dict)
    package_years: range = field(default_factory=_package_years)
    provisional: bool = True  # count later years on their statutory holidays (marked provisional)
    _estimates: dict[int, YearSchedule] = field(default_factory=dict, repr=False)
    # Answers per day: chinese-calendar checks each date against its whole table (a min and a max over every
    # holiday it knows), which made due dates the slowest part of a large batch; a year has 365 answers.
    _days: dict[dt.date, bool] = field(default_factory=dict, repr=False)
    generation: int = 0  # bumped when the override tables are replaced: memos of due dates key on it

    def knows(self, year: int) -> bool:
        """Whether the year's official schedule is known (package or override table)."""
        return year in self.overrides or year in self.package_years

    def basis(self, year: int) -> Basis:
        """``official`` for a known year, ``provisional`` for a later one; ``OutsideCalendar`` otherwise."""
        if self.knows(year):
            return "official"
        if self.provisional and year > self.package_years[-1]:
            return "provisional"
        raise OutsideCalendar(dt.date(year, 1, 1))

    def replace_overrides(self, overrides: dict[int, YearSchedule]) -> None:
        """Take a re-read override table (a year's official schedule arrived) without a restart."""
        self.overrides = dict(overrides)
        # A new dict, not clear(): a thread still answering from the old tables writes into the old one.
        self._days = {}
        self.generation += 1

    @property
    def years(self) -> list[int]:
        return sorted(set(self.package_years) | set(self.overrides))

    def is_workday(self, day: dt.date) -> bool:
        days = self._days
        known = days.get(day)
        if known is None:
            known = days[day] = self._is_workday(day)
        return known

    def _is_workday(self, day: dt.date) -> bool:
        schedule = self.overrides.get(day.year)
        if schedule is not None:
            if day in schedule.workdays:
                return True
            if day in schedule.holidays:
                return False
            return day.weekday() < 5
        if day.year in self.package_years:
            return bool(chinese_calendar.is_workday(day))
        try:
            self.basis(day.year)
        except OutsideCalendar:
            raise OutsideCalendar(day) from None
        estimate = self._estimates.get(day.year)
        if estimate is None:
            estimate = self._estimates[day.year] = statutory_holidays(day.year)
        return day.weekday() < 5 and day not in estimate.holidays

    def add_workdays(self, start: dt.date, n: int) -> dt.date:
        """The n-th working day after ``start`` (``start`` itself is not counted; n ≥ 1)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        day, counted = start, 0
        while counted < n:
            day += dt.timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return day

    def add_workdays_with_basis(self, start: dt.date, n: int) -> tuple[dt.date, Basis]:
        """``add_workdays`` and the basis of the answer: provisional when any day counted lies in a year whose
        official schedule is not known yet."""
        end = self.add_workdays(start, n)
        years = range((start + dt.timedelta(days=1)).year, end.year + 1)
        return end, "provisional" if any(self.basis(y) == "provisional" for y in years) else "official"

    def workdays_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (start, end]: how many working days are left from ``start`` until ``end``."""
        return sum(1 for i in range(1, (end - start).days + 1) if self.is_workday(start + dt.timedelta(days=i)))


def _dates(values: object, where: str) -> frozenset[dt.date]:
    if not isinstance(values, list):
        raise OverrideError(f"{where}: expected a list of dates")
    days = set()
    for index, value in enumerate(values):
        try:
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        except ValueError:
            raise OverrideError(f"{where}[{index}]: {value!r} is not a date (YYYY-MM-DD)") from None
        days.add(day)
    return frozenset(days)


def parse_overrides(text: str, origin: str) -> dict[int, YearSchedule]:
    """Parse a TOML override table: ``[years.2027]`` with ``holidays`` and ``workdays`` lists and a ``source``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OverrideError(f"{origin}: {exc}") from None
    schedules: dict[int, YearSchedule] = {}
    for key, entry in (data.get("years") or {}).items():
        where = f"{origin}: years.{key}"
        if not str(key).isdigit() or not isinstance(entry, dict):
            raise OverrideError(f"{where}: expected [years.YYYY] with holidays and workdays")
        year = int(key)
        holidays = _dates(entry.get("holidays", []), f"{where}.holidays")
        workdays = _dates(entry.get("workdays", []), f"{where}.workdays")
        for day in holidays | workdays:
            if day.year != year:
                raise OverrideError(f"{where}: {day.isoformat()} is not in {year}")
        for day in holidays:
            if day.weekday() >= 5:
                raise OverrideError(f"{where}.holidays: {day.isoformat()} is a weekend day, already off")
        for day in workdays:
            if day.weekday() < 5:
                raise OverrideError(f"{where}.workdays: {day.isoformat()} is a weekday, already on")
        schedules[year] = YearSchedule(year, holidays, workdays, str(entry.get("source", "")))
    return schedules


def load_overrides(extra_files: Iterable[Path] = ()) -> dict[int, YearSchedule]:
    """The shipped override table, then the operator's files (later ones win)."""
    shipped = resources.files("schemas").joinpath("data/workdays.toml").read_text(encoding="utf-8")
    overrides = parse_overrides(shipped, "schemas/data/workdays.toml")
    for path in extra_files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OverrideError(f"{path}: {exc.strerror}") from None
        overrides.update(parse_overrides(text, str(path)))
    return overrides


def load_calendar(extra_files: Iterable[Path] = (), *, provisional: bool = True) -> WorkCalendar:
    """The package calendar, then the shipped override table, then the operator's files (later ones win)."""
    return WorkCalendar(load_overrides(extra_files), provisional=provisional)
