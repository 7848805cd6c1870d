"""Report periods as operators write them: a month, a quarter, a year, or a day (daily reports)."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass


class PeriodError(ValueError):
    pass


# The span reports and replays may ask about: the People's Republic's records (decisions before 1949-10-01 are
# refused at ingest) up to the standard's "long-term" sentinel year; beyond it dates overflow the arithmetic.
EARLIEST_YEAR, LATEST_YEAR = 1949, 2099
EARLIEST_DAY, LATEST_DAY = dt.date(EARLIEST_YEAR, 1, 1), dt.date(LATEST_YEAR, 12, 31)


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: dt.date
    end: dt.date  # inclusive

    @property
    def year(self) -> int:
        return self.start.year


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_period(text: str) -> Period:
    """``2026-10`` (month), ``2026-Q4`` (quarter), ``2026`` (year) or ``2026-10-05`` (one day)."""
    value = text.strip()
    if (year := _leading_year(value)) is not None and not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise PeriodError(
            f"period {text!r} is out of range: the year must be between {EARLIEST_YEAR} and {LATEST_YEAR}"
        )
    try:
        if m := _MONTH.match(value):
            year, month = int(m[1]), int(m[2])
            last = calendar.monthrange(year, month)[1]
            return Period(value, dt.date(year, month, 1), dt.date(year, month, last))
        if m := _QUARTER.match(value):
            year, quarter = int(m[1]), int(m[2])
            first = 3 * quarter - 2
            last = calendar.monthrange(year, first + 2)[1]
            return Period(f"{year}-Q{quarter}", dt.date(year, first, 1), dt.date(year, first + 2, last))
        if m := _YEAR.match(value):
            year = int(m[1])
            return Period(value, dt.date(year, 1, 1), dt.date(year, 12, 31))
        if _DAY.match(value):
            day = dt.date.fromisoformat(value)
            return Period(value, day, day)
    except ValueError:
        pass
    raise PeriodError(
        f"period {text!r} is not a month (2026-10), a quarter (2026-Q4), a year (2026) or a day (2026-10-05)"
    )


def _leading_year(value: str) -> int | None:
    head = value[:4]
    return int(head) if len(head) == 4 and head.isdigit() else None


def previous_month(today: dt.date) -> Period:
    first = today.replace(day=1) - dt.timedelta(days=1)
    return parse_period(f"{first.year:04d}-{first.month:02d}")


def months_back(end: dt.date, count: int) -> dt.date:
    """The first day of the month ``count - 1`` months before ``end``'s month: the start of a ``count``-month trend."""
    year, month = end.year, end.month - (count - 1)
    while month < 1:
        month += 12
        year -= 1
    return dt.date(year, month, 1)
