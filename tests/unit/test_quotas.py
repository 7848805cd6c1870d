"""The quota domain on its own: task rows from counts, and the month-end window on the working-day calendar."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from schemas.calendar import load_calendar
from schemas.quotas import (
    BUREAU,
    QuotaTargets,
    Tally,
    in_month_end_window,
    month_end_window,
    monthly_tasks,
    shortfalls,
    yearly_tasks,
)

CALENDAR = load_calendar()


def test_september_2026_window_counts_the_mid_autumn_holiday() -> None:
    # September 2026 ends: Wed 23, Thu 24, [Fri 25 中秋 holiday, Sat 26, Sun 27], Mon 28, Tue 29, Wed 30.
    # Last five working days: 30, 29, 28, 24, 23 → the window opens Wed 09-23; counting weekdays alone
    # (30, 29, 28, 25, 24) would open it a day late, on 09-24.
    assert month_end_window(dt.date(2026, 9, 1), CALENDAR, 5) == dt.date(2026, 9, 23)
    assert not in_month_end_window(dt.date(2026, 9, 22), CALENDAR, 5)  # the sixth working day before month end
    assert in_month_end_window(dt.date(2026, 9, 23), CALENDAR, 5)
    assert in_month_end_window(dt.date(2026, 9, 26), CALENDAR, 5)  # a holiday weekend inside the window
    assert in_month_end_window(dt.date(2026, 9, 30), CALENDAR, 5)
    assert not in_month_end_window(dt.date(2026, 10, 1), CALENDAR, 5)  # a new month, a new count


def test_february_2026_window_counts_a_saturday_make_up_day() -> None:
    # Sat 02-28 is a make-up working day (调休): the last five are 28, 27, 26, 25, 24 → opens Tue 02-24.
    assert month_end_window(dt.date(2026, 2, 10), CALENDAR, 5) == dt.date(2026, 2, 24)
    assert not in_month_end_window(dt.date(2026, 2, 23), CALENDAR, 5)  # 春节 holiday, before the window
    assert not in_month_end_window(dt.date(2026, 2, 24), CALENDAR, 0)  # 0: switched off


def test_task_rows_carry_target_actual_and_status() -> None:
    tally = Tally(
        portal_news={("建工科", "2026-09"): 2},
        municipal_news={"2026-09": 1},
        cases={"房监科": 1},
        red_list={"建工科": 3},
        black_list={},
    )
    targets = QuotaTargets()
    monthly = monthly_tasks(tally, ["2026-09"], ["房监科", "建工科"], targets)
    assert [(r.department, r.task, r.target, r.actual, r.status) for r in monthly] == [
        ("建工科", "portal_news", 1, 2, "达标"),  # departments in code-point order, as every report sorts them
        ("房监科", "portal_news", 1, 0, "未达标"),
        (BUREAU, "municipal_news", 2, 1, "未达标"),
    ]
    assert [(r.department, r.missing) for r in shortfalls(monthly, "2026-09")] == [("房监科", 1), (BUREAU, 1)]
    yearly = yearly_tasks(tally, 2026, ["房监科", "建工科"], targets)
    assert [(r.department, r.task, r.actual, r.met) for r in yearly] == [
        ("建工科", "cases", 0, False),
        ("建工科", "red_list", 3, True),
        ("建工科", "black_list", 0, False),
        ("房监科", "cases", 1, True),
        ("房监科", "red_list", 0, False),
        ("房监科", "black_list", 0, False),
    ]
    stricter = yearly_tasks(tally, 2026, ["建工科"], QuotaTargets(red_list_per_year=4))
    assert stricter[1].as_dict()["missing"] == 1 and stricter[1].as_dict()["status"] == "未达标"


def test_targets_default_to_the_plan_and_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = Settings().quotas
    assert (plan.portal_news_per_month, plan.municipal_news_per_month, plan.cases_per_year) == (1, 2, 1)
    assert (plan.red_list_per_year, plan.black_list_per_year, plan.month_end_workdays) == (1, 1, 5)
    monkeypatch.setenv("CREDIT_GATEWAY_QUOTAS__MUNICIPAL_NEWS_PER_MONTH", "3")
    monkeypatch.setenv("CREDIT_GATEWAY_QUOTAS__MONTH_END_WORKDAYS", "0")
    changed = Settings().quotas
    assert changed.municipal_news_per_month == 3 and changed.month_end_workdays == 0
    monkeypatch.setenv("CREDIT_GATEWAY_QUOTAS__CASES_PER_YEAR", "-1")
    with pytest.raises(ValidationError, match="cases_per_year"):
        Settings()
