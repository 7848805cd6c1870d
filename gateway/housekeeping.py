"""Reports, reconciliation, expiry and due-date upkeep: what the API, the CLI and the scheduled jobs share.

Each operation takes who asks (an operator's key, ``cli``, or the scheduler as ``system``) so the audit log names
them. Scheduling lives in ``gateway.jobs``; this module only does the work.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.client import TargetClient
from gateway.clock import Clock, local_date
from gateway.reconcile import reconcile
from gateway.reports.build import Progress, build_report
from gateway.reports.tasks import TaskTables, task_tables
from gateway.services.actors import Wake, no_worker
from gateway.settings import Settings
from outbox import excerpts
from outbox.ingest import Actor
from outbox.provisional import Recomputed
from outbox.store import Store
from schemas import expiry
from schemas.calendar import OutsideCalendar, OverrideError, end_of_day
from schemas.deadlines import Deadlines, standing
from schemas.enums import ARTICLE_KINDS, Kind, WithdrawReason
from schemas.periods import Period, parse_period
from schemas.quotas import QuotaTargets, month_end_window, month_label, shortfalls

log = logging.getLogger(__name__)
SYSTEM = Actor("scheduler", "system")


def _quiet(_: str) -> None:
    return None


@dataclass
class Housekeeping:
    settings: Settings
    store: Store
    clock: Clock
    deadlines: Deadlines
    clients: Callable[[], dict[str, TargetClient]]
    wake: Wake = no_worker  # the push loop in this process, told when reconciliation requeues

    def today(self) -> dt.date:
        return local_date(self.clock)

    # -- reports -----------------------------------------------------------------------------------------

    def compute_report(
        self, period: Period, *, as_of: dt.date | None = None, progress: Progress = _quiet
    ) -> dict[str, Any]:
        return build_report(
            self.store,
            period,
            as_of=as_of or self.today(),
            now=self.clock.now(),
            departments=self.settings.jobs.report_departments,
            trend_months=self.settings.jobs.trend_months,
            quota_targets=self.quota_targets(),
            progress=progress,
        )

    def quota_targets(self) -> QuotaTargets:
        q = self.settings.quotas
        return QuotaTargets(
            portal_news_per_month=q.portal_news_per_month,
            municipal_news_per_month=q.municipal_news_per_month,
            cases_per_year=q.cases_per_year,
            red_list_per_year=q.red_list_per_year,
            black_list_per_year=q.black_list_per_year,
        )

    def task_tables(self, period: str | Period | None = None, *, as_of: dt.date | None = None) -> TaskTables:
        """月度任务 and 年度任务 as plain rows (the console's view): this month by default, as of today."""
        day = as_of or self.today()
        chosen = parse_period(period or month_label(day)) if not isinstance(period, Period) else period
        return task_tables(
            self.store,
            chosen,
            as_of=day,
            departments=self.settings.jobs.report_departments,
            targets=self.quota_targets(),
        )

    def quotas_at_risk(self, today: dt.date) -> dict[str, Any]:
        """In the month's last N working days (settings: ``QUOTAS__MONTH_END_WORKDAYS``), the monthly tasks not
        met yet, each with what is missing; before that window, none."""
        n = self.settings.quotas.month_end_workdays
        if n == 0:
            return {"window_from": None, "items": []}
        try:
            start = month_end_window(today, self.deadlines.calendar, n)
        except OutsideCalendar as exc:  # the deliveries still answer; the month end cannot be placed
            log.warning("month-end quota window unknown: %s", exc, extra={"action": "quota_window_unknown"})
            return {"window_from": None, "items": [], "calendar_missing": str(exc)}
        items = []
        if today >= start:
            month = month_label(today)
            items = [r.as_dict() for r in shortfalls(self.task_tables(month, as_of=today).monthly, month)]
        return {"window_from": start, "items": items}

    def create_report(
        self,
        period: str | Period,
        *,
        actor: Actor,
        trigger: str = "on_demand",
        as_of: dt.date | None = None,
        progress: Progress = _quiet,
    ) -> tuple[int, dict[str, Any]]:
        chosen = parse_period(period) if isinstance(period, str) else period
        data = self.compute_report(chosen, as_of=as_of, progress=progress)
        report_id = self.store.save_report(
            period=chosen.label,
            trigger=trigger,
            as_of=dt.date.fromisoformat(data["as_of"]),
            actor=actor,
            data=data,
            now=self.clock.now(),
        )
        return report_id, data

    # -- deadlines ---------------------------------------------------------------------------------------

    def at_risk(self, *, workdays: int | None = None, limit: int = 200) -> dict[str, Any]:
        """Unpublished deliveries due within ``workdays`` working days (overdue ones first: earliest due date),
        and, at month end, the departments short of their monthly quota (``quotas``)."""
        today = self.today()
        n = self.settings.deadlines.at_risk_workdays if workdays is None else workdays
        horizon, basis = (today, "official") if n == 0 else self.deadlines.calendar.add_workdays_with_basis(today, n)
        items = self.store.at_risk(due_by_date=horizon, limit=limit)
        for item in items:
            due = item["due_date"]
            item["overdue"] = due < today
            item["workdays_left"] = 0 if due <= today else self.deadlines.calendar.workdays_between(today, due)
        return {
            "today": today,
            "horizon": horizon,
            "horizon_basis": basis,
            "workdays": n,
            "items": items,
            "quotas": self.quotas_at_risk(today),
        }

    def refresh_due_dates(self) -> int:
        """Fill due dates left empty because the calendar lacked a year it now has (an override was added)."""
        self._reload_calendar()
        filled = []
        for kind, decided_on, target in self.store.missing_due_dates():
            try:
                due = self.deadlines.due_with_basis(target, Kind.from_code(kind), decided_on)
            except OutsideCalendar:
                continue
            if due is not None:
                filled.append((kind, decided_on, target, due.day, end_of_day(due.day), due.basis))
        return self.store.fill_due_dates(filled) if filled else 0

    def recompute_provisional(self, *, actor: Actor = SYSTEM) -> list[dict[str, Any]]:
        """Recount provisional due dates on the calendar as it is now: once a year's official schedule is known
        (override file, or a newer chinese-calendar) they become official, and those that move are logged
        (WARNING) and audited (``deadline.recomputed``). Returns the changes."""
        self._reload_calendar()
        answers = []
        for kind, decided_on, target in self.store.provisional_groups():
            try:
                due = self.deadlines.due_with_basis(target, Kind.from_code(kind), decided_on)
            except OutsideCalendar:
                continue
            if due is not None:
                answers.append(Recomputed(kind, decided_on, target, due.day, due.basis))
        changes = self.store.settle_provisional(answers, actor=actor, now=self.clock.now()) if answers else []
        for c in changes:
            moved = c["from"] != c["to"]
            log.log(
                logging.WARNING if moved else logging.INFO,
                "due date of %s %s on %s recomputed: %s -> %s (%s)",
                c["kind"],
                c["source_id"],
                c["target"],
                c["from"].isoformat(),
                c["to"].isoformat(),
                c["basis"],
                extra={
                    "action": "deadline_recomputed",
                    "record_id": c["record_id"],
                    "kind": c["kind"],
                    "target": c["target"],
                    "decided_on": c["decided_on"].isoformat(),
                    "due_from": c["from"].isoformat(),
                    "due_to": c["to"].isoformat(),
                    "basis": c["basis"],
                    "moved": moved,
                },
            )
        if changes:
            log.info(
                "provisional due dates recomputed: %d changed, %d moved",
                len(changes),
                sum(1 for c in changes if c["from"] != c["to"]),
                extra={"action": "deadlines_recomputed", "changed": len(changes)},
            )
        return changes

    def _reload_calendar(self) -> None:
        try:
            years = self.deadlines.reload()
        except OverrideError:
            log.exception("the working-day override table is malformed; keeping the calendar in use")
            return
        if years:
            log.info(
                "working-day calendar now knows %s",
                ", ".join(map(str, years)),
                extra={"action": "calendar_reloaded", "years": years},
            )

    def annotate(self, view: dict[str, Any]) -> dict[str, Any]:
        """Add to a record view how it stands today on each target (on the current version's publish delivery,
        judged as the 公示率 judges it: the first acceptance of any version against the current due date), and why
        a due date is missing."""
        today = self.today()
        kind = Kind.from_code(view["kind"])
        decided_on = dt.date.fromisoformat(view["decided_on"])
        withdrawn = view["withdrawn"]
        withdrawn_at = dt.datetime.fromisoformat(withdrawn["at"]) if withdrawn else None
        publishes = [d for d in view["deliveries"] if d["operation"] == "publish"]
        first: dict[str, dt.datetime] = {}
        for d in publishes:
            if d["state"] == "published" and d["published_at"]:
                at = dt.datetime.fromisoformat(d["published_at"])
                first[d["target"]] = min(at, first.get(d["target"], at))
        for d in publishes:
            if d["version"] != view["version"]:
                continue
            due = dt.date.fromisoformat(d["due_date"]) if d["due_date"] else None
            if due is None and kind in ARTICLE_KINDS:  # a quota item: no deadline, so no standing to judge
                d["due_note"] = self.deadlines.explain(d["target"], kind, decided_on)
                continue
            on = standing(due=due, published_at=first.get(d["target"]), withdrawn_at=withdrawn_at, on=today)
            d["standing"] = on.value
            if due is not None and d.get("due_date_basis") == "provisional":
                d["due_note"] = (
                    f"provisional: {due.year}'s 放假安排 is not published yet; counted on its statutory holidays "
                    "and recomputed when the schedule arrives"
                )
            if due is None:
                d["due_note"] = self.deadlines.explain(d["target"], kind, decided_on)
        return view

    # -- expiry ------------------------------------------------------------------------------------------

    def purge_checks(self, *, actor: Actor = SYSTEM) -> int:
        """Delete kept credit checks older than ``CHECKS__RETENTION_DAYS`` (audited; nothing when unset)."""
        from gateway.checks import purge_expired  # checks imports the national subject client: only when run

        return purge_expired(self.settings, self.store, self.clock, actor.name)

    def prune_excerpts(self) -> int:
        """Delete exchange excerpts older than ``DELIVERY__EXCERPT_RETENTION_DAYS``; how many were deleted."""
        before = self.clock.now() - dt.timedelta(days=self.settings.delivery.excerpt_retention_days)
        total = 0
        while done := self.store.db.transact(lambda conn: excerpts.prune_batch(conn, before=before)):
            total += done
        if total:
            log.info("deleted %d exchange excerpts made before %s", total, before.isoformat())
        return total

    def expire(self, *, actor: Actor = SYSTEM) -> list[dict[str, Any]]:
        """Withdraw from every target what left its publication period before today."""
        today = self.today()
        rules = self.settings.jobs.period_rules
        shortest = min([r.default_months for r in rules] + [m for r in rules for m in r.months_by_category.values()])
        done = []
        for row in self.store.expiry_candidates(today=today, shortest_months_ago=expiry.add_months(today, -shortest)):
            note = expiry.expired(row["kind"], row["content"], today, rules)
            if note is None:
                continue
            result = self.store.withdraw(
                source_system=row["source_system"],
                kind=Kind.from_code(row["kind"]),
                source_id=row["source_id"],
                reason=WithdrawReason.PERIOD_ENDED,
                note=note,
                actor=actor,
                now=self.clock.now(),
            )
            if not result.already:
                done.append({"kind": row["kind"], "source_id": row["source_id"], "note": note})
        if done:
            log.info("publication period ended: %d records withdrawn", len(done))
        return done

    # -- reconciliation ----------------------------------------------------------------------------------

    def reconcile(self, target: str, *, actor: Actor) -> dict[str, Any]:
        clients = self.clients()
        if target not in clients:
            raise KeyError(target)
        kinds = [k for k in Kind if target in self.store.routes.get(k, ())]
        run = reconcile(self.store, clients[target], kinds, actor=actor, clock=self.clock)
        if run["requeued"]:
            self.wake([target])
        return run

    def reconciliations(self, *, target: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.store.reconciliations(target=target, limit=limit)

    def reconciliation(self, run_id: int) -> dict[str, Any] | None:
        return self.store.reconciliation(run_id)

    def reports(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.reports(limit=limit)

    def report(self, report_id: int) -> dict[str, Any] | None:
        return self.store.report(report_id)
