"""Report mail: the scheduled reports (and ``report --email``) sent by SMTP, with the XLSX, the HTML and the 通报.

Each (edition, recipient) is a row of ``report_mail`` (``outbox.mails``), queued once and sent by ``send_due``:
the same loop whether the scheduler, the API or the CLI asked. A send that fails for a reason that may pass
(connection refused, timeout, a 4xx answer such as 451) waits and is tried again with the delivery engine's
backoff policy (tenacity's exponential wait with jitter, given up after ``max_attempts`` or ``max_age_hours``);
a 5xx answer (no such mailbox, message refused) is given up at once, because sending it again would only be
refused again. Every attempt is audited and the rows are listed by ``GET /api/v1/report-mails``.

The attachments are rendered from the stored report at send time, so they carry exactly its numbers, and a
retry sends the same document. The Message-ID is derived from the row, so a mail server that saw a message
whose acknowledgement was lost (a process killed between SMTP's answer and the database update) can tell.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from gateway.clock import Clock, local_date
from gateway.housekeeping import SYSTEM, Housekeeping
from gateway.reports.render import percent, render
from outbox.ingest import Actor
from outbox.lifecycle import RetryPolicy
from schemas.calendar import ZONE, OutsideCalendar, WorkCalendar
from schemas.periods import Period, parse_period, previous_month

log = logging.getLogger("gateway.mailer")

ATTACHMENTS = {  # which schedule kinds carry which formats: the 通报 is the monthly bulletin
    "monthly": ("xlsx", "html", "docx"),
    "weekly": ("xlsx", "html"),
    "on_demand": ("xlsx", "html", "docx"),
}
TITLES = {"monthly": "公示率月报", "weekly": "公示率周报", "on_demand": "公示率报告"}
FILE_NAMES = {
    "xlsx": "公示率报告-{period}.xlsx",
    "html": "公示率报告-{period}.html",
    "docx": "信用信息公示情况通报-{period}.docx",
}
SUBTYPES = {
    "xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "html": ("text", "html"),
    "docx": ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document"),
}


class MailNotConfigured(RuntimeError):
    """No SMTP host: mail can be queued but not sent."""


@dataclass(frozen=True, slots=True)
class SendFailure:
    message: str
    permanent: bool

    def __str__(self) -> str:
        return self.message


def classify(exc: Exception) -> SendFailure:
    """A failed SMTP exchange as retryable (4xx, network) or permanent (5xx)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        text = "; ".join(
            f"{rcpt}: {code} {msg.decode(errors='replace')}" for rcpt, (code, msg) in exc.recipients.items()
        )
        return SendFailure(f"recipient refused: {text}", permanent=all(500 <= c < 600 for c in codes))
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return SendFailure(f"{exc.smtp_code} {reply}", permanent=500 <= exc.smtp_code < 600)
    return SendFailure(f"{type(exc).__name__}: {exc}", permanent=False)


def subject(schedule_kind: str, period: str, as_of: str) -> str:
    title = TITLES.get(schedule_kind, TITLES["on_demand"])
    return f"【{title}】{period}（统计截至 {as_of}）怀化市住房和城乡建设局"


def body_text(report: dict[str, Any]) -> str:
    total = report["summary"]["total"]
    return (
        f"公示率报告 {report['period']}（决定日期 {report['from']} 至 {report['to']}，统计截至 {report['as_of']}）\n\n"
        f"总体公示率：{percent(total['rate'])}\n"
        f"记录数 {report['summary'].get('records', '')} 条；投递数计入 {total['counted']} 次："
        f"按时公示 {total['on_time']}，"
        f"超期公示 {total['late']}，逾期未公示 {total['overdue']}；待公示 {total['pending']}（不计入）。\n\n"
        "明细见附件（Excel 表格、网页报告"
        + ("和通报" if "docx" in report.get("_attachments", ()) else "")
        + "）。本邮件由信用信息报送网关自动发送。\n"
    )


def build_message(
    *, mail: dict[str, Any], report: dict[str, Any], schedule_kind: str, sender: str, now: dt.datetime
) -> EmailMessage:
    formats = ATTACHMENTS.get(schedule_kind, ATTACHMENTS["on_demand"])
    message = EmailMessage()
    message["Subject"] = subject(schedule_kind, report["period"], report["as_of"])
    message["From"] = sender
    message["To"] = mail["recipient"]
    message["Date"] = format_datetime(now.astimezone(ZONE))
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else "credit-gateway"
    message["Message-ID"] = f"<report-mail-{mail['id']}-{mail['edition'].replace(':', '.')}@{domain}>"
    message.set_content(body_text({**report, "_attachments": formats}))
    for fmt in formats:
        maintype, subtype = SUBTYPES[fmt]
        message.add_attachment(
            render(report, fmt),  # type: ignore[arg-type]
            maintype=maintype,
            subtype=subtype,
            filename=FILE_NAMES[fmt].format(period=report["period"]),
        )
    return message


def first_workday(calendar: WorkCalendar, days: Sequence[dt.date]) -> dt.date | None:
    """The first working day among ``days``; a year the calendar lacks falls back to Monday–Friday (a mail a
    day early or late is harmless, unlike a deadline) and says so in the log."""
    for day in days:
        try:
            if calendar.is_workday(day):
                return day
        except OutsideCalendar:
            log.warning("no working-day schedule for %d: report mail goes by weekdays", day.year)
            if day.weekday() < 5:
                return day
    return None


class ReportMailer:
    def __init__(self, housekeeping: Housekeeping, calendar: WorkCalendar) -> None:
        self.housekeeping = housekeeping
        self.settings = housekeeping.settings
        self.store = housekeeping.store
        self.clock: Clock = housekeeping.clock
        self.calendar = calendar
        m = self.settings.report_mail
        self.policy = RetryPolicy(
            max_attempts=m.max_attempts,
            max_age=dt.timedelta(hours=m.max_age_hours),
            initial_seconds=m.initial_backoff_seconds,
            max_wait_seconds=m.max_backoff_seconds,
        )

    # -- schedules ---------------------------------------------------------------------------------------

    def mails(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Report mail sent and to be sent, newest first."""
        return self.store.report_mails(state=state, limit=limit)

    def schedules(self) -> list[dict[str, Any]]:
        return self.store.report_schedules()

    def seed_schedules(self) -> None:
        schedules = [s.model_dump() for s in self.settings.report_mail.schedules]
        self.store.seed_schedules(schedules, now=self.clock.now())

    def due_today(self, kind: str, today: dt.date) -> Period | None:
        """The period a schedule of ``kind`` reports today, or None when today is not its day."""
        if kind == "monthly":
            month = [today.replace(day=d) for d in range(1, 29)]
            return previous_month(today) if first_workday(self.calendar, month) == today else None
        if kind == "weekly":
            monday = today - dt.timedelta(days=today.weekday())
            week = [monday + dt.timedelta(days=d) for d in range(7)]
            if first_workday(self.calendar, week) != today:
                return None
            yesterday = today - dt.timedelta(days=1)
            return parse_period(f"{yesterday.year:04d}-{yesterday.month:02d}")
        return None

    def run_schedules(self, *, actor: Actor = SYSTEM) -> list[int]:
        """Queue the mail of every schedule due today (once: a second run, or a restart, finds it queued)."""
        today = local_date(self.clock)
        self.seed_schedules()  # the settings as they are now (a schedule edited in the console stays as edited)
        queued: list[int] = []
        for schedule in self.store.report_schedules():
            if not schedule["enabled"] or not schedule["recipients"]:
                continue
            period = self.due_today(schedule["kind"], today)
            if period is None:
                continue
            edition = f"{schedule['name']}:{period.label}"
            if schedule["kind"] == "weekly":
                edition += f"@{today.isoformat()}"
            ids, _ = self.queue(
                period,
                schedule=schedule["name"],
                edition=edition,
                recipients=schedule["recipients"],
                trigger=schedule["kind"],
                actor=actor,
            )
            queued += ids
        return queued

    # -- queue and send ----------------------------------------------------------------------------------

    def queue(
        self,
        period: Period,
        *,
        schedule: str,
        edition: str,
        recipients: Sequence[str],
        trigger: str,
        actor: Actor,
        resend: bool = False,
        report_id: int | None = None,
        as_of: dt.date | None = None,
    ) -> tuple[list[int], list[str]]:
        """Queue ``edition`` for the recipients who do not have it yet (all of them with ``resend``).

        One stored report serves every recipient of an edition: the one already sent if there is one."""
        have = self.store.mail_editions(edition)
        if not resend and all(r in have for r in recipients):
            return [], list(recipients)
        if report_id is None:
            report_id = next(iter(have.values()), None) if not resend else None
        if report_id is None:
            report_id, _ = self.housekeeping.create_report(period, actor=actor, trigger=trigger, as_of=as_of)
        return self.store.queue_mail(
            report_id=report_id,
            schedule=schedule,
            edition=edition,
            period=period.label,
            recipients=list(recipients),
            resend=resend,
            actor=actor,
            now=self.clock.now(),
        )

    def send_due(self, *, ids: Sequence[int] | None = None, actor: Actor = SYSTEM) -> list[dict[str, Any]]:
        """Send what is due (or the given mails, if due); returns each attempt's outcome."""
        smtp = self.settings.smtp
        if smtp.host is None:
            if ids is not None:
                raise MailNotConfigured("no SMTP server: set CREDIT_GATEWAY_SMTP__HOST (and __PORT, __FROM)")
            return []
        now = self.clock.now()
        lease_for = dt.timedelta(seconds=smtp.timeout_seconds * 4 + 60)
        outcomes = []
        while batch := self.store.lease_mail(now=now, until=now + lease_for, ids=ids):
            reports: dict[int, dict[str, Any]] = {}
            for mail in batch:
                if mail["report_id"] not in reports:
                    run = self.store.report(mail["report_id"])
                    reports[mail["report_id"]] = run or {}
                outcomes.append(self._attempt(mail, reports[mail["report_id"]], actor))
            now = self.clock.now()
        return outcomes

    def _attempt(self, mail: dict[str, Any], run: dict[str, Any], actor: Actor) -> dict[str, Any]:
        now = self.clock.now()
        attempts = mail["attempts"] + 1
        try:
            kind = str(run.get("trigger")) if run.get("trigger") in ATTACHMENTS else "on_demand"
            message = build_message(
                mail=mail, report=run["data"], schedule_kind=kind, sender=self.settings.smtp.sender, now=now
            )
            self._send(message)
        except Exception as exc:  # every failure is recorded on the row; none stops the loop
            failure = classify(exc)
            age = now - mail["created_at"]
            if failure.permanent or self.policy.gives_up(attempts, age):
                outcome, next_at = "given_up", None
            else:
                outcome = "retry_wait"
                next_at = now + dt.timedelta(seconds=self.policy.wait_seconds(attempts))
            log.warning("report mail %s to %s: %s (%s)", mail["id"], mail["recipient"], failure, outcome)
            self.store.settle_mail(
                mail_id=mail["id"], outcome=outcome, error=str(failure), next_at=next_at, actor=actor, now=now
            )
            return {"id": mail["id"], "recipient": mail["recipient"], "state": outcome, "error": str(failure)}
        self.store.settle_mail(mail_id=mail["id"], outcome="sent", error=None, next_at=None, actor=actor, now=now)
        log.info("report mail %s sent to %s (%s)", mail["id"], mail["recipient"], mail["edition"])
        return {"id": mail["id"], "recipient": mail["recipient"], "state": "sent", "error": None}

    def _send(self, message: EmailMessage) -> None:
        smtp = self.settings.smtp
        assert smtp.host is not None
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.username:
                password = smtp.password.get_secret_value() if smtp.password else ""
                client.login(smtp.username, password)
            client.send_message(message)
