"""Report mail end to end against a real SMTP server (aiosmtpd), on SQLite and PostgreSQL.

The monthly schedule's day is the month's first working day: 2026-11-01 is a Sunday, so November's is Monday
11-02, when October's report goes out. The clock is a manual one set to 08:00 Beijing time that day; the job
functions are the scheduler's own, called directly rather than waited for.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import docx
import httpx
import lxml.html
import openpyxl
import pytest
import sqlalchemy as sa

from gateway.app import build_app
from gateway.clock import ManualClock
from gateway.housekeeping import SYSTEM
from gateway.jobs import Jobs
from gateway.settings import ReportMailSettings, ReportSchedule, Settings, SmtpSettings
from outbox.database import Database
from outbox.store import Store
from outbox.tables import audit_event
from schemas import deadlines
from schemas.periods import parse_period
from tests import live
from tests.conftest import bearer
from tests.contract.test_reports import seed
from tests.smtp import Inbox, smtp_server

LEADERS = ["leader@example.org", "kaohe@example.org"]
MONDAY = dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.UTC)  # 08:00 in Huaihua, the first working day of November


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def mail_settings(settings: Settings, inbox: Inbox) -> Settings:
    return settings.model_copy(
        update={
            "smtp": SmtpSettings(host=inbox.host, port=inbox.port, sender="gongshi@example.org", timeout_seconds=10),
            "report_mail": ReportMailSettings(
                schedules=[ReportSchedule(name="monthly", kind="monthly", recipients=LEADERS)],
                initial_backoff_seconds=60,
                max_backoff_seconds=600,
            ),
        }
    )


class Gateway:
    """One running gateway over the test's database: a real server, its services and its scheduled jobs."""

    def __init__(self, settings: Settings, store: Store, clock: ManualClock, url: str, app: Any) -> None:
        self.settings, self.store, self.clock, self.url = settings, store, clock, url
        self.services = app.state.services
        self.jobs = Jobs(self.services.housekeeping, self.services.mailer)

    def get(self, path: str, key: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}{path}", params=params, headers=bearer(key), timeout=30)
        assert answer.status_code == 200, answer.text
        return answer


def start(settings: Settings, store: Store, clock: ManualClock) -> Iterator[Gateway]:
    app = build_app(settings, store=store, clock=clock)
    with live.serve(app) as url:
        yield Gateway(settings, store, clock, url, app)


@pytest.fixture
def gateway(mail_settings: Settings, store: Store) -> Iterator[Gateway]:
    seed(store)
    yield from start(mail_settings, store, ManualClock(MONDAY))


def mails(gateway: Gateway, key: str) -> list[dict[str, Any]]:
    return gateway.get("/api/v1/report-mails", key).json()["items"]  # type: ignore[no-any-return]


def audited(store: Store, action: str) -> int:
    query = sa.select(sa.func.count()).select_from(audit_event).where(audit_event.c.action == action)
    return int(store.db.read(lambda c: c.execute(query).scalar_one()))


def attachments(message: Any) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}


def test_the_monthly_report_arrives_on_the_first_working_day_with_three_attachments_that_agree(
    gateway: Gateway, inbox: Inbox, operator_key: str
) -> None:
    sunday = ManualClock(MONDAY - dt.timedelta(days=1))
    gateway.services.mailer.clock = sunday  # the 1st is a Sunday: not the schedule's day
    assert gateway.jobs.report_mail() == [] and inbox.messages == []
    gateway.services.mailer.clock = gateway.clock

    assert len(gateway.jobs.report_mail()) == 2
    assert sorted(r for rcpt, _ in inbox.messages for r in rcpt) == sorted(LEADERS)
    sent = mails(gateway, operator_key)
    assert {(m["recipient"], m["state"], m["attempts"], m["period"]) for m in sent} == {
        (r, "sent", 1, "2026-10") for r in LEADERS
    }
    assert len({m["report_id"] for m in sent}) == 1  # one stored report for every recipient
    report = gateway.get(f"/api/v1/reports/{sent[0]['report_id']}", operator_key, format="json").json()
    total = report["summary"]["total"]
    assert (report["period"], report["as_of"], round(total["rate"], 4)) == ("2026-10", "2026-11-02", 0.8889)

    [message] = inbox.to("leader@example.org")
    assert message["Subject"].startswith("【公示率月报】2026-10") and message["From"] == "gongshi@example.org"
    files = attachments(message)
    assert set(files) == {"公示率报告-2026-10.xlsx", "公示率报告-2026-10.html", "信用信息公示情况通报-2026-10.docx"}
    book = openpyxl.load_workbook(io.BytesIO(files["公示率报告-2026-10.xlsx"]))
    overall = next(r for r in book["汇总"].iter_rows(min_row=2) if r[0].value == "全局")
    assert overall[-1].value == total["rate"] and overall[-1].number_format == "0.00%"
    assert [c.value for c in overall[4:7]] == [total["on_time"], total["late"], total["overdue"]]
    for sheet, listed in (("逾期未公示", "overdue"), ("超期公示", "late")):
        rows = [r[2] for r in book[sheet].iter_rows(min_row=2, values_only=True) if r[0] != "无"]
        assert rows == [i["source_id"] for i in report[listed]]
    assert report["late"]  # L2 was late on two targets by 11-02
    page = lxml.html.fromstring(files["公示率报告-2026-10.html"])
    assert page.get_element_by_id("rate").text == f"{total['rate'] * 100:.2f}%"
    assert len(page.xpath("//table[@data-table='late']/tbody/tr")) == max(len(report["late"]), 1)
    bulletin = docx.Document(io.BytesIO(files["信用信息公示情况通报-2026-10.docx"]))
    text = "\n".join(p.text for p in bulletin.paragraphs)
    assert f"总体公示率为 {total['rate'] * 100:.2f}%" in text and "（2026-10）" in text
    assert audited(gateway.store, "report.mail.sent") == 2 and audited(gateway.store, "report.mail.queued") == 1

    # The job runs again (a second process, a misfire): everyone has it, nothing is queued or sent.
    assert gateway.jobs.report_mail() == [] and len(inbox.messages) == 2


def test_a_restarted_gateway_does_not_send_again(
    mail_settings: Settings, store: Store, gateway: Gateway, inbox: Inbox, operator_key: str
) -> None:
    gateway.jobs.report_mail()
    assert len(inbox.messages) == 2
    db = Database(mail_settings.database_url, pool_size=4)
    fresh = Store(db, mail_settings.targets.routes(), deadlines.from_settings(mail_settings.deadlines).due_dates)
    try:
        for restarted in start(mail_settings, fresh, ManualClock(MONDAY + dt.timedelta(hours=1))):
            assert restarted.jobs.report_mail() == []
            restarted.jobs.send_mail()
            assert len(mails(restarted, operator_key)) == 2
    finally:
        db.dispose()
    assert len(inbox.messages) == 2


def test_a_refusing_server_is_retried_with_backoff_then_the_mail_goes_once(
    gateway: Gateway, inbox: Inbox, operator_key: str
) -> None:
    inbox.accept.clear()  # 451 to every recipient until set
    gateway.jobs.report_mail()
    waiting = mails(gateway, operator_key)
    assert {(m["state"], m["attempts"]) for m in waiting} == {("retry_wait", 1)}
    assert all("451" in m["last_error"] for m in waiting)
    first_try = {dt.datetime.fromisoformat(m["next_attempt_at"]) for m in waiting}
    assert all(MONDAY + dt.timedelta(seconds=60) <= t <= MONDAY + dt.timedelta(seconds=62) for t in first_try)
    assert gateway.services.mailer.send_due() == []  # not due yet: nothing is tried early
    assert audited(gateway.store, "report.mail.failed") == 2

    gateway.clock.advance(dt.timedelta(minutes=2))
    assert {o["state"] for o in gateway.jobs.mailer.send_due()} == {"retry_wait"}  # type: ignore[union-attr]
    later = mails(gateway, operator_key)
    assert {m["attempts"] for m in later} == {2}
    assert min(dt.datetime.fromisoformat(m["next_attempt_at"]) for m in later) >= gateway.clock.now() + dt.timedelta(
        seconds=120
    )  # the wait doubled

    inbox.accept.set()
    gateway.clock.advance(dt.timedelta(minutes=10))
    gateway.jobs.send_mail()
    assert sorted(r for rcpt, _ in inbox.messages for r in rcpt) == sorted(LEADERS)  # once each
    assert {(m["state"], m["attempts"], m["last_error"]) for m in mails(gateway, operator_key)} == {("sent", 3, None)}
    assert inbox.refused == 4 and audited(gateway.store, "report.mail.failed") == 4
    gateway.clock.advance(dt.timedelta(hours=1))
    gateway.jobs.send_mail()
    assert len(inbox.messages) == 2


def test_a_permanent_refusal_is_given_up_at_once_and_resend_is_on_purpose(
    gateway: Gateway, inbox: Inbox, operator_key: str
) -> None:
    inbox.permanent = True
    gateway.jobs.report_mail()
    given_up = gateway.get("/api/v1/report-mails", operator_key, state="given_up").json()["items"]
    assert len(given_up) == 2 and all(m["last_error"].startswith("recipient refused") for m in given_up)
    assert audited(gateway.store, "report.mail.given_up") == 2

    inbox.permanent = False
    mailer = gateway.services.mailer
    october = parse_period("2026-10")
    args: dict[str, Any] = {
        "schedule": "monthly",
        "edition": "monthly:2026-10",
        "recipients": LEADERS,
        "trigger": "monthly",
        "actor": SYSTEM,
    }
    assert mailer.queue(october, **args) == ([], LEADERS)  # not twice unless asked
    ids, skipped = mailer.queue(october, **args, resend=True)
    assert len(ids) == 2 and skipped == []
    assert {o["state"] for o in mailer.send_due()} == {"sent"}
    assert len(inbox.messages) == 2
    rounds = {(m["recipient"], m["round"], m["state"]) for m in mails(gateway, operator_key)}
    assert rounds == {(r, 0, "given_up") for r in LEADERS} | {(r, 1, "sent") for r in LEADERS}


def test_schedules_come_from_the_settings_and_mail_is_for_operators(
    gateway: Gateway, source_key: str, operator_key: str
) -> None:
    assert gateway.get("/api/v1/report-schedules", operator_key).json()["items"] == []  # no jobs here yet
    gateway.jobs.report_mail()  # every run brings the settings' schedules into the table first
    [schedule] = gateway.get("/api/v1/report-schedules", operator_key).json()["items"]
    assert (schedule["name"], schedule["kind"], schedule["recipients"], schedule["source"]) == (
        "monthly",
        "monthly",
        LEADERS,
        "settings",
    )
    refused = httpx.get(f"{gateway.url}/api/v1/report-mails", headers=bearer(source_key))
    assert refused.status_code == 403
    bad = httpx.get(f"{gateway.url}/api/v1/report-mails", params={"state": "lost"}, headers=bearer(operator_key))
    assert bad.status_code == 422
    assert {"report-mail", "report-mail-send"} <= {job.id for job in gateway.jobs.scheduler.get_jobs()}
