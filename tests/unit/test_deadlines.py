"""Due dates and standings, with expectations computed by hand from the State Council's 2025/2026 schedules."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from gateway.settings import DeadlineSettings
from schemas.calendar import OutsideCalendar, OverrideError, WorkCalendar, load_calendar, parse_overrides
from schemas.deadlines import Deadlines, DueDate, Rule, Standing, from_settings, rate, standing
from schemas.enums import Kind

D = dt.date
CAL = load_calendar()
DEFAULT = from_settings(DeadlineSettings())


def test_the_standards_worked_examples() -> None:
    assert CAL.add_workdays(D(2026, 1, 20), 20) == D(2026, 2, 24)
    assert CAL.add_workdays(D(2025, 9, 20), 20) == D(2025, 10, 23)


def test_a_licence_decided_before_national_day_2026() -> None:
    # Mon 09-28. Working: 09-29 (1), 09-30 (2); 10-01..10-07 off except nothing; 10-08 (3), 10-09 (4),
    # Sat 10-10 is a make-up day (5); Sun 10-11 off; 10-12..16 (6-10), 10-19..23 (11-15), 10-26..30 (16-20).
    assert DEFAULT.due("national", Kind.LICENCE, D(2026, 9, 28)) == D(2026, 10, 30)
    assert CAL.is_workday(D(2026, 10, 10)) and not CAL.is_workday(D(2026, 10, 5))
    # Weekday arithmetic alone would say 10-26: the holiday costs a week, the make-up Saturday gives a day back.
    assert D(2026, 9, 28) + dt.timedelta(weeks=4) == D(2026, 10, 26)


def test_a_penalty_decided_just_before_the_2026_spring_festival() -> None:
    # Fri 02-13. Sat 02-14 make-up (1); 02-15..02-23 off (Sunday, holiday week, weekend, Mon 02-23 holiday);
    # 02-24..27 (2-5); Sat 02-28 make-up (6); 03-02..06 (7-11); 03-09..13 (12-16); 03-16..19 (17-20).
    assert DEFAULT.due("provincial", Kind.PENALTY, D(2026, 2, 13)) == D(2026, 3, 19)


def test_a_portal_deadline_runs_over_a_weekend_in_calendar_days() -> None:
    # Fri 2026-11-20 + 7 calendar days = Fri 11-27: the weekend counts, as "7天内" says.
    assert DEFAULT.due("portal", Kind.LICENCE, D(2026, 11, 20)) == D(2026, 11, 27)
    # Over National Day too: calendar days do not stop for holidays.
    assert DEFAULT.due("portal", Kind.PENALTY, D(2026, 9, 30)) == D(2026, 10, 7)


def test_day_one_setting_counts_the_decision_day() -> None:
    counted = from_settings(DeadlineSettings(day_one="decision_day"))
    assert counted.due("portal", Kind.LICENCE, D(2026, 11, 20)) == D(2026, 11, 26)
    # Tue 2026-01-20 is itself working day 1, so the 20th is one working day earlier than the default's 02-24:
    # going back over the holiday (02-15..02-23), that is the make-up Saturday 02-14.
    assert counted.due("national", Kind.LICENCE, D(2026, 1, 20)) == D(2026, 2, 14)


def test_a_year_outside_the_calendar_is_a_clear_error_without_provisional_counting() -> None:
    strict = from_settings(DeadlineSettings(provisional=False))
    with pytest.raises(OutsideCalendar, match="no working-day schedule for 2027") as caught:
        strict.due("municipal", Kind.LICENCE, D(2027, 3, 1))
    assert caught.value.day == D(2027, 3, 2)  # the first day the count needed
    # A December decision whose 20 working days reach into the unknown year is refused the same way ...
    with pytest.raises(OutsideCalendar):
        strict.due("municipal", Kind.LICENCE, D(2026, 12, 15))
    # ... while the portal's calendar-day deadline needs no working-day data.
    assert strict.due("portal", Kind.LICENCE, D(2026, 12, 30)) == D(2027, 1, 6)
    # The ingest fan-out leaves the unknown ones out (null), and the record view says why.
    dues = strict.due_dates(Kind.LICENCE, D(2026, 12, 15), ["national", "portal"])
    assert dues == {"portal": DueDate(D(2026, 12, 22), "official")}
    assert "2027" in (strict.explain("national", Kind.LICENCE, D(2026, 12, 15)) or "")
    # Years before the package's first are never estimated, provisional counting or not.
    with pytest.raises(OutsideCalendar):
        CAL.is_workday(D(2003, 6, 1))


def test_a_licence_decided_on_2026_12_10_gets_a_provisional_january_due_date() -> None:
    # The holidays package's statutory days for 2027 that fall on weekdays (the law's 补假 for a holiday on a
    # weekend included): 01-01 (Fri, 元旦), 02-05 (Fri, 除夕), 02-08..02-10 (春节 and its 补假), 04-05 (清明),
    # 05-03, 05-04 (劳动节 补假), 06-09 (端午), 09-15 (中秋), 10-01, 10-04, 10-05 (国庆 and 补假).
    # Hand count from Thu 2026-12-10, day one the next day: Fri 12-11 (1); 12-14..18 (2-6); 12-21..25 (7-11);
    # 12-28..31 Mon-Thu (12-15); Fri 2027-01-01 元旦, off; Sat 01-02, Sun 01-03 off; Mon 01-04 (16), 01-05 (17),
    # 01-06 (18), 01-07 (19), Fri 01-08 (20).
    assert DEFAULT.due_with_basis("national", Kind.LICENCE, D(2026, 12, 10)) == DueDate(D(2027, 1, 8), "provisional")
    # The portal's 7 calendar days need no schedule: official even across the year's end.
    assert DEFAULT.due_with_basis("portal", Kind.LICENCE, D(2026, 12, 30)) == DueDate(D(2027, 1, 6), "official")
    # A count that stays inside 2026 is official.
    assert DEFAULT.due_with_basis("national", Kind.LICENCE, D(2026, 11, 2)) == DueDate(D(2026, 11, 30), "official")
    # Weekday arithmetic alone would cross 元旦 as a working day and say 01-07: the statutory day is honoured.
    assert CAL.is_workday(D(2027, 1, 1)) is False and CAL.is_workday(D(2027, 2, 9)) is False
    assert CAL.basis(2027) == "provisional" and CAL.basis(2026) == "official"


def test_an_override_with_a_make_up_day_replaces_the_provisional_count(tmp_path: Path) -> None:
    table = tmp_path / "2027.toml"
    table.write_text("", encoding="utf-8")
    deadlines = from_settings(DeadlineSettings(overrides_file=table))
    assert deadlines.due_with_basis("municipal", Kind.LICENCE, D(2026, 12, 10)) == DueDate(D(2027, 1, 8), "provisional")
    table.write_text('[years.2027]\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-02"]\n', encoding="utf-8")
    assert deadlines.reload() == [2027]
    # 12-31 is working day 15; 01-01 off; Sat 01-02 a make-up working day (16); 01-04..07 (17-20).
    assert deadlines.due_with_basis("municipal", Kind.LICENCE, D(2026, 12, 10)) == DueDate(D(2027, 1, 7), "official")


def test_an_override_year_makes_the_deadline_computable(tmp_path: Path) -> None:
    table = tmp_path / "2027.toml"
    table.write_text(
        '[years.2027]\nsource = "test schedule"\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-09"]\n',
        encoding="utf-8",
    )
    deadlines = from_settings(DeadlineSettings(overrides_file=table))
    # Tue 2026-12-15: 12-16..18 (3), 12-21..25 (8), 12-28..31 (12), Fri 01-01 off, 01-04..08 (17),
    # Sat 01-09 make-up (18), 01-11 (19), 01-12 (20).
    assert deadlines.due("municipal", Kind.LICENCE, D(2026, 12, 15)) == D(2027, 1, 12)
    assert deadlines.calendar.years[-1] == 2027


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[years.2027]\nholidays = ["2027-02-30"]\n', "years.2027.holidays[0]: '2027-02-30' is not a date"),
        ('[years.2027]\nholidays = ["2027-01-02"]\n', "2027-01-02 is a weekend day"),
        ('[years.2027]\nworkdays = ["2027-01-04"]\n', "2027-01-04 is a weekday"),
        ('[years.2027]\nholidays = ["2028-01-03"]\n', "2028-01-03 is not in 2027"),
        ("[years.2027\n", "overrides.toml"),
    ],
)
def test_a_malformed_override_names_the_entry(text: str, message: str) -> None:
    with pytest.raises(OverrideError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_overrides(text, "overrides.toml")


def test_an_override_replaces_the_package_for_its_year() -> None:
    # Pretend 2026-10-09 (a Friday) were declared a holiday: the count moves by one day.
    overridden = WorkCalendar(parse_overrides('[years.2026]\nholidays = ["2026-10-09"]\n', "x"))
    assert overridden.is_workday(D(2026, 10, 9)) is False
    assert overridden.is_workday(D(2026, 10, 1)) is True  # the override year is the whole truth for that year


def test_no_rule_means_no_deadline() -> None:
    only_portal = Deadlines([Rule("portal", (Kind.LICENCE,), 7, "calendar")], CAL)
    assert only_portal.due("national", Kind.LICENCE, D(2026, 5, 6)) is None
    assert only_portal.explain("national", Kind.LICENCE, D(2026, 5, 6)) == "no deadline rule for licences on national"


SH = dt.timezone(dt.timedelta(hours=8))


@pytest.mark.parametrize(
    ("published", "withdrawn", "on", "expected"),
    [
        (dt.datetime(2026, 10, 30, 23, 59, tzinfo=SH), None, D(2026, 11, 30), Standing.ON_TIME),
        (dt.datetime(2026, 10, 31, 0, 0, tzinfo=SH), None, D(2026, 11, 30), Standing.LATE),
        (None, None, D(2026, 10, 30), Standing.PENDING),
        (None, None, D(2026, 10, 31), Standing.OVERDUE),
        (None, dt.datetime(2026, 10, 20, tzinfo=SH), D(2026, 11, 30), Standing.NOT_APPLICABLE),
        (None, dt.datetime(2026, 11, 2, tzinfo=SH), D(2026, 11, 30), Standing.OVERDUE),  # withdrawn after due
        (dt.datetime(2026, 10, 20, tzinfo=SH), dt.datetime(2026, 10, 25, tzinfo=SH), D(2026, 11, 1), Standing.ON_TIME),
        # As it stood on 10-15, a publication on 10-20 had not happened yet.
        (dt.datetime(2026, 10, 20, tzinfo=SH), None, D(2026, 10, 15), Standing.PENDING),
    ],
)
def test_standing(
    published: dt.datetime | None, withdrawn: dt.datetime | None, on: dt.date, expected: Standing
) -> None:
    assert standing(due=D(2026, 10, 30), published_at=published, withdrawn_at=withdrawn, on=on) is expected


def test_unknown_due_date_and_the_rate() -> None:
    assert standing(due=None, published_at=None, withdrawn_at=None, on=D(2026, 1, 1)) is Standing.UNKNOWN
    assert rate({Standing.PENDING: 4}) is None  # nothing counted: no rate, not 100 %
    assert rate({Standing.ON_TIME: 3, Standing.LATE: 1, Standing.OVERDUE: 1, Standing.PENDING: 9}) == 0.6


def test_a_due_date_not_computable_is_one_warning_with_fields(caplog: pytest.LogCaptureFixture) -> None:
    strict = from_settings(DeadlineSettings(provisional=False))
    with caplog.at_level(logging.WARNING, logger="gateway.deadlines"):
        for day in (D(2026, 12, 15), D(2026, 12, 16)):  # every ingest of that year would say it again: said once
            assert strict.due_dates(Kind.LICENCE, day, ["national"]) == {}
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "due_date_not_computable"]
    assert record.levelno == logging.WARNING
    fields = record.fields  # type: ignore[attr-defined]
    assert (fields["target"], fields["kind"], fields["decided_on"]) == ("national", "licences", "2026-12-15")
    assert "2027" in fields["reason"]
