"""The outbox as the rest of the gateway sees it: each call is one transaction on the ``Database``."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from outbox import audit as audit_log
from outbox import (
    expiry,
    health,
    keys,
    leases,
    mails,
    migrate,
    operations,
    provisional,
    rates,
    reconciliation,
    settled,
    views,
    withdrawals,
)
from outbox import ingest as ingest_tx
from outbox.database import Database
from outbox.errors import StoreBusy
from outbox.ingest import Actor, Incoming, Stored
from outbox.lifecycle import AttemptResult, Settlement
from outbox.tables import delivery, report_run
from schemas.enums import Kind, WithdrawReason

log = logging.getLogger("outbox.store")


class AtomicBatchRefused(Exception):
    """An all-or-nothing batch had an item the store refused; nothing was written."""

    def __init__(self, results: list[Stored]) -> None:
        super().__init__("atomic batch refused")
        self.results = results


class Store:
    def __init__(
        self, db: Database, routes: Mapping[Kind, Sequence[str]], due: ingest_tx.DueDates = ingest_tx.no_deadlines
    ) -> None:
        self.db = db
        self.routes = {kind: tuple(targets) for kind, targets in routes.items()}
        self.due = due

    def ingest(
        self,
        *,
        source_system: str,
        kind: Kind,
        items: Sequence[Incoming],
        actor: Actor,
        now: dt.datetime,
        atomic: bool = False,
        origin: str = "api",
    ) -> list[Stored]:
        targets = self.routes.get(kind, ())
        tried = False
        if self.db.is_postgres and len(items) == 1 and targets:  # the common case, see ingest_tx.create_one
            tried = True
            created = self.db.autocommit(
                lambda conn: ingest_tx.create_one(
                    conn,
                    source_system=source_system,
                    kind=kind,
                    item=items[0],
                    targets=targets,
                    actor=actor,
                    now=now,
                    due=self.due,
                    origin=origin,
                )
            )
            if created is not None:
                return [created]

        def work(conn: Connection) -> list[Stored]:
            results = ingest_tx.ingest(
                conn,
                source_system=source_system,
                kind=kind,
                items=items,
                targets=targets,
                actor=actor,
                now=now,
                due=self.due,
                origin=origin,
                one_statement=not tried,
            )
            if atomic and any(r.status == "withdrawn" for r in results):
                raise AtomicBatchRefused(results)
            return results

        return self.db.transact(work)

    def withdraw(
        self,
        *,
        source_system: str,
        kind: Kind,
        source_id: str,
        reason: WithdrawReason,
        note: str | None,
        actor: Actor,
        now: dt.datetime,
    ) -> withdrawals.Withdrawal:
        return self.db.transact(
            lambda conn: withdrawals.withdraw(
                conn,
                source_system=source_system,
                kind=kind,
                source_id=source_id,
                reason=reason,
                note=note,
                actor=actor,
                now=now,
            )
        )

    def record_view(self, kind: Kind, source_id: str, source_system: str | None) -> dict[str, Any]:
        return self.db.read(lambda conn: views.record_view(conn, kind, source_id, source_system))

    def known_hashes(self, source_system: str, kind: Kind, source_ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
        return self.db.read(lambda conn: views.known_hashes(conn, source_system, kind, list(source_ids)))

    def existing_deliveries(self, ids: Sequence[int]) -> set[int]:
        return self.db.read(lambda conn: views.existing_deliveries(conn, list(ids)))

    def source_system_of(self, kind: Kind, source_id: str) -> str:
        """The source system of the only record with this kind and source_id (operators may omit it)."""
        return str(self.db.read(lambda conn: views.find_record(conn, kind, source_id, None).source_system))

    def audit(
        self, actor: Actor, action: str, now: dt.datetime, *, kind: Kind | None = None, detail: dict[str, Any]
    ) -> None:
        """Record an action that wrote nothing else (a refused request, say)."""
        entry = {"at": now, "actor": actor.name, "role": actor.role, "action": action, "detail": detail}
        self.db.transact(lambda conn: audit_log.append(conn, [{**entry, "kind": kind.value if kind else None}]))

    def verify_audit(self, *, limit: int = 20) -> audit_log.Verdict:
        """Walk the audit hash chain (one read transaction: a consistent snapshot of the whole log)."""
        return self.db.read(lambda conn: audit_log.verify(conn, limit=limit))

    def audit_entries(self, **filters: Any) -> list[dict[str, Any]]:
        return self.db.read(lambda conn: audit_log.listing(conn, **filters))

    def create_key(
        self,
        *,
        name: str,
        role: str,
        kinds: tuple[str, ...] | None,
        actor: str,
        now: dt.datetime,
        actor_role: str = "operator",
    ) -> tuple[str, keys.KeyInfo]:
        return self.db.transact(
            lambda conn: keys.create(
                conn, name=name, role=role, kinds=kinds, actor=actor, now=now, actor_role=actor_role
            )
        )

    def lookup_key(self, key: str) -> keys.KeyInfo | None:
        return self.db.read(lambda conn: keys.lookup(conn, key))

    def list_keys(self) -> list[keys.KeyInfo]:
        return self.db.read(keys.list_keys)

    def revoke_key(self, *, prefix: str, actor: str, now: dt.datetime, actor_role: str = "operator") -> int:
        return self.db.transact(
            lambda conn: keys.revoke(conn, prefix=prefix, actor=actor, now=now, actor_role=actor_role)
        )

    # -- delivery (leases are short transactions of their own; the HTTP call happens between them) ------------

    def lease_due(
        self,
        *,
        target: str,
        owner: str,
        limit: int,
        now: dt.datetime,
        lease_for: dt.timedelta,
        urgent_by: dt.date | None = None,
    ) -> list[leases.Leased]:
        return self.db.transact(
            lambda c: leases.lease_due(
                c, target=target, owner=owner, limit=limit, now=now, lease_for=lease_for, urgent_by=urgent_by
            )
        )

    def lease_awaiting(
        self, *, target: str, owner: str, limit: int, now: dt.datetime, lease_for: dt.timedelta
    ) -> list[leases.Leased]:
        run = self.db.autocommit if self.db.is_postgres else self.db.transact  # PostgreSQL: one statement
        return run(
            lambda c: leases.lease_awaiting(c, target=target, owner=owner, limit=limit, now=now, lease_for=lease_for)
        )

    def settle(
        self,
        *,
        owner: str,
        decided: Sequence[tuple[leases.Leased, Settlement, AttemptResult]],
        now: dt.datetime,
        duration_ms: int,
    ) -> int:
        return self.db.transact(
            lambda c: leases.settle(c, owner=owner, decided=decided, now=now, duration_ms=duration_ms)
        )

    def still_processing(self, *, owner: str, ids: Sequence[int], next_at: dt.datetime, now: dt.datetime) -> None:
        self.db.transact(lambda c: leases.still_processing(c, owner=owner, ids=ids, next_at=next_at, now=now))

    def give_back(self, *, owner: str, ids: Sequence[int], now: dt.datetime) -> int:
        return self.db.transact(lambda c: leases.give_back(c, owner=owner, ids=ids, now=now))

    def extend_leases(self, *, owner: str, ids: Sequence[int], until: dt.datetime) -> int:
        return self.db.transact(lambda c: leases.extend(c, owner=owner, ids=ids, until=until))

    def reap(self, *, now: dt.datetime) -> int:
        return self.db.transact(lambda c: leases.reap(c, now=now))

    # -- operator actions (audited) -------------------------------------------------------------------------

    def dead_letters(self, **filters: Any) -> tuple[int, list[dict[str, Any]]]:
        return self.db.read(lambda c: operations.dead_letters(c, **filters))

    def requeue(self, *, ids: Sequence[int], actor: Actor, now: dt.datetime) -> int:
        return self.db.transact(lambda c: operations.requeue(c, ids=ids, actor=actor, now=now))

    def cancel(self, *, ids: Sequence[int], actor: Actor, now: dt.datetime, reason: str | None) -> int:
        return self.db.transact(lambda c: operations.cancel(c, ids=ids, actor=actor, now=now, reason=reason))

    def set_paused(self, *, target: str, paused: bool, reason: str | None, actor: Actor, now: dt.datetime) -> None:
        self.db.transact(
            lambda c: operations.set_paused(c, target=target, paused=paused, reason=reason, actor=actor, now=now)
        )
        name = "target_paused" if paused else "target_resumed"
        fields = {"target": target, "by": actor.name, "reason": reason}
        log.warning(  # every path (API, CLI, console) comes through here: one operator event, after the commit
            "%s target=%s by=%s reason=%s", name, target, actor.name, reason, extra={"event": name, "fields": fields}
        )

    def paused_targets(self) -> dict[str, dict[str, Any]]:
        return self.db.read(operations.paused_targets)

    def target_health(self) -> dict[str, health.TargetHealth]:
        return self.db.read(health.read)

    def change_health(
        self, *, target: str, now: dt.datetime, step: Callable[[health.TargetHealth], health.TargetHealth]
    ) -> tuple[health.TargetHealth, health.TargetHealth]:
        return self.db.transact(lambda c: health.change(c, target=target, now=now, step=step))

    def claim_probe(
        self, *, target: str, owner: str, now: dt.datetime, open_for: dt.timedelta, until: dt.datetime
    ) -> health.TargetHealth | None:
        return self.db.transact(
            lambda c: health.claim_probe(c, target=target, owner=owner, now=now, open_for=open_for, until=until)
        )

    def replay(
        self, *, target: str, since: dt.datetime, dry_run: bool, actor: Actor, now: dt.datetime
    ) -> list[dict[str, Any]]:
        return self.db.transact(
            lambda c: operations.replay(c, target=target, since=since, dry_run=dry_run, actor=actor, now=now)
        )

    def delivery_counts_total(self, state: str) -> int:
        return int(
            self.db.read(
                lambda c: c.execute(
                    sa.select(sa.func.count()).select_from(delivery).where(delivery.c.state == state)
                ).scalar_one()
            )
        )

    def publish_lags(self) -> list[float]:
        """Seconds from ingest to business acceptance, per published delivery (for latency figures)."""

        def read(conn: Connection) -> list[float]:
            rows = conn.execute(
                sa.select(delivery.c.created_at, delivery.c.published_at).where(delivery.c.state == "published")
            )
            return [(published - created).total_seconds() for created, published in rows]

        return self.db.read(read)

    def delivery_counts(self) -> dict[str, dict[str, int]]:
        """{target: {state: count}} over every delivery (an index-only scan on PostgreSQL)."""

        def read(conn: Connection) -> dict[str, dict[str, int]]:
            found: dict[str, dict[str, int]] = {}
            query = sa.select(delivery.c.target, delivery.c.state, sa.func.count()).group_by(
                delivery.c.target, delivery.c.state
            )
            for target, state, count in conn.execute(query):
                found.setdefault(target, {})[state] = count
            return found

        return self.db.read(read)

    # 公示率, deadlines and stored reports (outbox.rates holds the SQL)

    def standings(self, **period: Any) -> list[rates.Group]:
        return self.db.read(lambda c: rates.standings(c, **period))

    def report_standings(
        self,
        *,
        decided_from: dt.date,
        decided_to: dt.date,
        as_of: dt.date,
        as_of_end: dt.datetime,
        listed_from: dt.date,
        listed_to: dt.date,
        which: Sequence[str],
    ) -> tuple[dict[str, list[rates.Group]], dict[str, list[dict[str, Any]]]]:
        """Counts per month of decision in [decided_from, decided_to] and the pairs in ``which`` standings decided
        in [listed_from, listed_to] (inside it). Settled months come from ``settled_standing``; the others are
        counted now, in the same pass as the listed pairs when none of those lie in a kept month, and stored
        when they turn out settled, for the next report."""
        months = settled.full_months(decided_from, decided_to)
        kept = self.db.read(lambda c: settled.cached(c, months, as_of=as_of, as_of_end=as_of_end))
        ranges = settled.edges(decided_from, decided_to, months)
        ranges += [settled.month_range(m) for m in months if m not in kept]
        window: dict[str, Any] = {
            "decided_from": decided_from,
            "decided_to": decided_to,
            "as_of": as_of,
            "as_of_end": as_of_end,
        }
        listed_window = {**window, "decided_from": listed_from, "decided_to": listed_to}
        if not any(_overlaps(settled.month_range(m), listed_from, listed_to) for m in kept):
            counted, listed = self.db.read(
                lambda c: rates.monthly_and_listed(
                    c, **window, ranges=ranges, listed_from=listed_from, listed_to=listed_to, which=which
                )
            )
        else:
            counted = self.db.read(lambda c: rates.monthly_groups(c, **window, ranges=ranges)) if ranges else {}
            listed = self.db.read(lambda c: rates.listed(c, which=which, **listed_window))
        fresh = [m for m in months if m in counted and m not in kept and settled.settled(counted[m])]
        # PostgreSQL counts them all in one pass (their rows may lie anywhere in ``delivery``); SQLite a month per
        # transaction, so its one write lock is never held for long.
        for months_now in [fresh] if self.db.is_postgres else [[m] for m in fresh]:
            with contextlib.suppress(StoreBusy):  # another process is changing or filling it: next time
                self.db.transact(partial(settled.fill, months=months_now))
        return dict(sorted({**kept, **counted}.items())), listed

    def listed(self, *, which: Sequence[str], **period: Any) -> dict[str, list[dict[str, Any]]]:
        return self.db.read(lambda c: rates.listed(c, which=which, **period))

    def at_risk(self, *, due_by_date: dt.date, limit: int) -> list[dict[str, Any]]:
        return self.db.read(lambda c: rates.at_risk(c, due_by_date=due_by_date, limit=limit))

    def missing_due_dates(self) -> list[Any]:
        return self.db.read(rates.missing_due_dates)

    def fill_due_dates(self, filled: Sequence[tuple[str, dt.date, str, dt.date, dt.datetime, str]]) -> int:
        return self.db.transact(lambda c: rates.fill_due_dates(c, filled))

    def provisional_groups(self) -> list[tuple[str, dt.date, str]]:
        return self.db.read(provisional.provisional_groups)

    def settle_provisional(
        self, answers: Sequence[provisional.Recomputed], *, actor: Actor, now: dt.datetime
    ) -> list[dict[str, Any]]:
        return self.db.transact(lambda c: provisional.settle(c, answers, actor=actor, now=now))

    def imported(self, *, decided_from: dt.date, decided_to: dt.date) -> int:
        return self.db.read(lambda c: rates.imported(c, decided_from=decided_from, decided_to=decided_to))

    def save_report(
        self, *, period: str, trigger: str, as_of: dt.date, actor: Actor, data: dict[str, Any], now: dt.datetime
    ) -> int:
        def work(conn: Connection) -> int:
            report_id = conn.execute(
                sa.insert(report_run)
                .values(period=period, trigger=trigger, as_of=as_of, created_at=now, actor=actor.name, data=data)
                .returning(report_run.c.id)
            ).scalar_one()
            detail = {"report": report_id, "period": period, "trigger": trigger}
            audit_log.append(
                conn,
                [{"at": now, "actor": actor.name, "role": actor.role, "action": "report.created", "detail": detail}],
            )
            return int(report_id)

        return self.db.transact(work)

    def reports(self, *, limit: int = 100) -> list[dict[str, Any]]:
        columns = [c for c in report_run.c if c.name != "data"]
        query = sa.select(*columns).order_by(report_run.c.id.desc()).limit(limit)
        return self.db.read(lambda c: [dict(r._mapping) for r in c.execute(query)])

    def report(self, report_id: int) -> dict[str, Any] | None:
        query = sa.select(report_run).where(report_run.c.id == report_id)
        row = self.db.read(lambda c: c.execute(query).first())
        return None if row is None else dict(row._mapping)

    def record_counts(self, *, decided_from: dt.date, decided_to: dt.date) -> dict[tuple[str, str], int]:
        return self.db.read(lambda c: rates.record_counts(c, decided_from=decided_from, decided_to=decided_to))

    # report mail (outbox.mails holds the SQL)

    def mail_editions(self, edition: str) -> dict[str, int]:
        return self.db.read(lambda c: mails.existing(c, edition))

    def queue_mail(self, **mail: Any) -> tuple[list[int], list[str]]:
        return self.db.transact(lambda c: mails.queue(c, **mail))

    def lease_mail(
        self, *, now: dt.datetime, until: dt.datetime, ids: Sequence[int] | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        return self.db.transact(lambda c: mails.lease(c, now=now, until=until, ids=ids, limit=limit))

    def settle_mail(self, **outcome: Any) -> None:
        self.db.transact(lambda c: mails.settle(c, **outcome))

    def report_mails(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.db.read(lambda c: mails.listing(c, state=state, limit=limit))

    def seed_schedules(self, schedules: Sequence[dict[str, Any]], *, now: dt.datetime) -> None:
        self.db.transact(lambda c: mails.seed_schedules(c, schedules, now=now))

    def report_schedules(self) -> list[dict[str, Any]]:
        return self.db.read(mails.schedules)

    @contextlib.contextmanager
    def singleton(self, name: str) -> Iterator[bool]:
        """Yields True in the one process that may run job ``name`` now (a PostgreSQL session advisory lock held
        for the block); on SQLite, a single-process database, always True."""
        if self.db.engine.dialect.name != "postgresql":
            yield True
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self.db.engine.connect() as conn:
            mine = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()
            try:
                yield mine
            finally:
                if mine:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def expiry_candidates(self, *, today: dt.date, shortest_months_ago: dt.date) -> list[dict[str, Any]]:
        return self.db.read(lambda c: expiry.candidates(c, today=today, shortest_months_ago=shortest_months_ago))

    # reconciliation (outbox.reconciliation holds the SQL)

    def believed_held(self, target: str) -> list[dict[str, Any]]:
        return self.db.read(lambda c: list(reconciliation.believed_held(c, target)))

    def with_open_deliveries(self, target: str, record_ids: Sequence[int]) -> set[int]:
        return self.db.read(lambda c: reconciliation.with_open_deliveries(c, target, record_ids))

    def start_reconciliation(self, *, target: str, actor: Actor, now: dt.datetime) -> int:
        return self.db.transact(lambda c: reconciliation.start(c, target=target, actor=actor, now=now))

    def finish_reconciliation(self, **run: Any) -> int:
        return self.db.transact(lambda c: reconciliation.finish(c, **run))

    def fail_reconciliation(self, *, run_id: int, error: str, now: dt.datetime) -> None:
        self.db.transact(lambda c: reconciliation.fail(c, run_id=run_id, error=error, now=now))

    def reconciliations(self, *, target: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.db.read(lambda c: reconciliation.runs(c, target=target, limit=limit))

    def reconciliation(self, run_id: int) -> dict[str, Any] | None:
        return self.db.read(lambda c: reconciliation.run(c, run_id))

    def migrate(self) -> str:
        return migrate.upgrade(self.db)

    def schema_is_current(self) -> bool:
        return migrate.is_current(self.db)


def _overlaps(span: tuple[dt.date, dt.date], first: dt.date, last: dt.date) -> bool:
    return span[0] <= last and first <= span[1]
