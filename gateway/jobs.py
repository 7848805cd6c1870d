"""The scheduled housekeeping of ``serve``: reports, reconciliation, expiry, due-date upkeep and the retention of
kept credit checks and of attempt excerpts (APScheduler cron).

Cron expressions come from ``JobSettings`` and are read in Asia/Shanghai. When several gateway processes share
one PostgreSQL, each job runs in one of them: a job first takes a session advisory lock named after it
(``Store.singleton``) and skips the run when another process holds it. A failing job is logged and retried at
its next time; it never stops the scheduler.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gateway.housekeeping import SYSTEM, Housekeeping
from gateway.mailer import ReportMailer
from schemas.calendar import ZONE
from schemas.periods import parse_period, previous_month

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, housekeeping: Housekeeping, mailer: ReportMailer | None = None) -> None:
        self.housekeeping = housekeeping
        self.mailer = mailer
        self.scheduler = BackgroundScheduler(timezone=ZONE)
        settings = housekeeping.settings.jobs
        self.schedule: dict[str, tuple[str, Callable[[], object]]] = {
            "daily-report": (settings.daily_report_cron, self.daily_report),
            "monthly-report": (settings.monthly_report_cron, self.monthly_report),
            "reconcile": (settings.reconcile_cron, self.reconcile),
            "expiry": (settings.expiry_cron, self.expiry),
        }
        for name, (cron, job) in self.schedule.items():
            self.scheduler.add_job(
                self._guarded(name, job),
                CronTrigger.from_crontab(cron, timezone=ZONE),
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )
        if mailer is not None:  # queue today's scheduled mail; send what is queued or waiting to be retried
            mail = housekeeping.settings.report_mail
            self.scheduler.add_job(
                self._guarded("report-mail", self.report_mail),
                CronTrigger.from_crontab(mail.send_cron, timezone=ZONE),
                id="report-mail",
                name="report-mail",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=6 * 3600,
            )
            self.scheduler.add_job(
                self._guarded("report-mail-send", self.send_mail),
                IntervalTrigger(seconds=mail.send_interval_seconds),
                id="report-mail-send",
                name="report-mail-send",
                max_instances=1,
                coalesce=True,
            )

    def _guarded(self, name: str, job: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                with self.housekeeping.store.singleton(f"job:{name}") as mine:
                    if mine:
                        job()
            except Exception:
                log.exception("scheduled job %s failed; it runs again at its next time", name)

        return run

    def start(self) -> None:
        if self.mailer is not None:  # once, at once, off the start-up path: the schedules as the settings say
            self.scheduler.add_job(self._guarded("report-schedules", self.mailer.seed_schedules), id="report-schedules")
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)

    def next_runs(self) -> dict[str, dt.datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    # -- the jobs ----------------------------------------------------------------------------------------

    def daily_report(self) -> int:
        """Month to date (yesterday's month), as of today."""
        yesterday = self.housekeeping.today() - dt.timedelta(days=1)
        period = parse_period(f"{yesterday.year:04d}-{yesterday.month:02d}")
        return self.housekeeping.create_report(period, actor=SYSTEM, trigger="daily")[0]

    def monthly_report(self) -> int:
        period = previous_month(self.housekeeping.today())
        return self.housekeeping.create_report(period, actor=SYSTEM, trigger="monthly")[0]

    def report_mail(self) -> list[int]:
        """Queue the mail of the schedules due today, then send it."""
        assert self.mailer is not None
        queued = self.mailer.run_schedules()
        self.mailer.send_due()
        return queued

    def send_mail(self) -> None:
        assert self.mailer is not None
        self.mailer.send_due()

    def reconcile(self) -> None:
        for target in self.housekeeping.clients():
            self.housekeeping.reconcile(target, actor=SYSTEM)

    def expiry(self) -> None:
        self.housekeeping.refresh_due_dates()
        self.housekeeping.recompute_provisional()
        self.housekeeping.expire()
        self.housekeeping.purge_checks()
        self.housekeeping.prune_excerpts()
