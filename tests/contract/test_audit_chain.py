"""The audit log as a hash chain, on SQLite and PostgreSQL: every write path chains, and edits made in SQL past the
append-only triggers (as a superuser could) are found by ``verify``, which names the entry."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from gateway.clock import ManualClock
from gateway.housekeeping import Housekeeping
from gateway.jobs import Jobs
from gateway.settings import Settings
from outbox import audit, migrate, tables
from outbox.database import Database
from outbox.ingest import Actor, Incoming
from outbox.store import Store
from schemas import deadlines
from schemas.enums import Kind, WithdrawReason
from schemas.validation import Canonical, validate
from tests.conftest import NOW, bearer
from tests.factories import licence

pytestmark = pytest.mark.tampers_audit  # these tests break the chain on purpose to see it found

SOURCE = Actor("approval-system", "source")
OPERATOR = Actor("credit-office", "operator")


def post(store: Store, *records: dict[str, Any]) -> None:
    items = []
    for data in records:
        result = validate(Kind.LICENCE, data, today=NOW.date())
        assert isinstance(result, Canonical)
        items.append(Incoming(result, data))
    store.ingest(source_system="approval-system", kind=Kind.LICENCE, items=items, actor=SOURCE, now=NOW)


def chain(store: Store) -> list[Any]:
    a = tables.audit_event
    return store.db.read(lambda c: c.execute(sa.select(a).order_by(a.c.seq)).all())


def busy_log(store: Store) -> list[Any]:
    """Entries from every kind of writer: the one-statement ingest (PostgreSQL), batches, withdrawals, keys,
    operator actions and a refused request, with details holding Chinese text, nested lists and nulls."""
    post(store, licence("XK-1"))
    post(store, licence("XK-2"), licence("XK-3"))
    post(store, licence("XK-1", content="内容改了，版本二"))
    store.withdraw(
        source_system="approval-system",
        kind=Kind.LICENCE,
        source_id="XK-2",
        reason=WithdrawReason.REVOKED,
        note="录入错误：撤下",
        actor=SOURCE,
        now=NOW,
    )
    _, info = store.create_key(name="approval-system", role="source", kinds=None, actor="张三", now=NOW)
    store.revoke_key(prefix=info.prefix, actor="张三", now=NOW + dt.timedelta(microseconds=7))
    store.set_paused(target="portal", paused=True, reason="栏目维护", actor=OPERATOR, now=NOW)
    store.audit(SOURCE, "ingest.refused", NOW, kind=Kind.LICENCE, detail={"errors": [{"field": "a|b", "n": None}]})
    return chain(store)


@contextmanager
def as_superuser(store: Store) -> Iterator[sa.Connection]:
    """A transaction in which the append-only triggers do not fire, as for someone who can switch them off."""
    with store.db.engine.begin() as conn:
        if store.db.is_postgres:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_event_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_event_no_delete")
        yield conn


def test_every_writer_chains_and_the_chain_verifies(store: Store) -> None:
    entries = busy_log(store)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == audit.GENESIS
    assert all(e.prev_hash == before.entry_hash for before, e in itertools.pairwise(entries))
    assert {e.action for e in entries} >= {"ingest.created", "ingest.updated", "record.withdraw", "key.create"}
    verdict = store.verify_audit()
    assert verdict.intact, verdict.findings
    assert (verdict.entries, verdict.head_seq, verdict.head_hash) == (
        len(entries),
        len(entries),
        entries[-1].entry_hash,
    )


def test_an_update_in_sql_is_found_and_named(store: Store) -> None:
    entries = busy_log(store)
    victim = entries[3]
    with as_superuser(store) as conn:
        conn.execute(sa.update(tables.audit_event).where(tables.audit_event.c.id == victim.id).values(actor="无名氏"))
    verdict = store.verify_audit()
    first = verdict.findings[0]
    assert (first.problem, first.entry_id, first.seq) == ("altered", victim.id, victim.seq)
    assert f"entry #{victim.id}" in first.message


def test_an_update_that_recomputes_the_entry_hash_is_found_at_the_next_link(store: Store) -> None:
    entries = busy_log(store)
    victim = entries[2]
    forged = audit.entry_hash(
        seq=victim.seq,
        at=victim.at,
        actor="无名氏",
        role=victim.role,
        action=victim.action,
        kind=victim.kind,
        source_id=victim.source_id,
        record_id=victim.record_id,
        detail=audit.detail_text(victim.detail),
        prev_hash=victim.prev_hash,
    )
    with as_superuser(store) as conn:
        conn.execute(
            sa.update(tables.audit_event)
            .where(tables.audit_event.c.id == victim.id)
            .values(actor="无名氏", entry_hash=forged)
        )
    first = store.verify_audit().findings[0]
    assert (first.problem, first.entry_id, first.seq) == ("altered", victim.id, victim.seq)


def test_a_delete_in_sql_is_found_and_named(store: Store) -> None:
    entries = busy_log(store)
    victim, after = entries[4], entries[5]
    with as_superuser(store) as conn:
        conn.execute(sa.delete(tables.audit_event).where(tables.audit_event.c.id == victim.id))
    first = store.verify_audit().findings[0]
    assert (first.problem, first.seq, first.entry_id) == ("removed", victim.seq, after.id)
    assert f"seq {victim.seq} was removed" in first.message


def test_an_insert_in_sql_is_found_and_named(store: Store) -> None:
    busy_log(store)
    with as_superuser(store) as conn:
        forged_id = conn.execute(
            sa.insert(tables.audit_event)
            .values(at=NOW, actor="credit-office", role="operator", action="delivery.requeue", detail={"ids": [1]})
            .returning(tables.audit_event.c.id)
        ).scalar_one()
    [finding] = store.verify_audit().findings
    assert (finding.problem, finding.entry_id) == ("inserted", forged_id)


def test_an_entry_forged_into_the_chain_is_found_and_named(store: Store) -> None:
    """Someone who knows the scheme replaces an entry by a new row at its place (DELETE, then INSERT with a hash
    that fits its own content): the link of the next entry gives it away."""
    entries = busy_log(store)
    victim = entries[1]
    content = {"at": victim.at, "actor": "someone", "role": "operator", "action": "key.create", "kind": None}
    content |= {"source_id": None, "record_id": None, "detail": '{"forged":true}'}
    digest = audit.entry_hash(seq=victim.seq, **content, prev_hash=victim.prev_hash)
    with as_superuser(store) as conn:
        conn.execute(sa.delete(tables.audit_event).where(tables.audit_event.c.id == victim.id))
        forged_id = conn.execute(
            sa.insert(tables.audit_event)
            .values(
                **{**content, "detail": {"forged": True}},
                seq=victim.seq,
                prev_hash=victim.prev_hash,
                entry_hash=digest,
            )
            .returning(tables.audit_event.c.id)
        ).scalar_one()
    first = store.verify_audit().findings[0]
    assert (first.problem, first.entry_id, first.seq) == ("altered", forged_id, victim.seq)


def test_listing_filters_by_actor_action_and_time(store: Store) -> None:
    busy_log(store)
    later = NOW + dt.timedelta(hours=1)
    store.set_paused(target="portal", paused=False, reason=None, actor=OPERATOR, now=later)
    assert [e["action"] for e in store.audit_entries(actor="credit-office")] == ["target.resume", "target.pause"]
    assert [e["action"] for e in store.audit_entries(action="key.")] == ["key.revoke", "key.create"]
    assert [e["action"] for e in store.audit_entries(action="key.create")] == ["key.create"]
    assert [e["action"] for e in store.audit_entries(since=later)] == ["target.resume"]
    assert len(store.audit_entries(until=later)) == len(chain(store)) - 1
    assert len(store.audit_entries(limit=2)) == 2


def test_existing_entries_are_chained_by_the_migration(db_url: str) -> None:
    db = Database(db_url)
    config = migrate._config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    insert = sa.text(
        "INSERT INTO audit_event (at, actor, role, action, detail) VALUES (:at, :actor, 'operator', :action, :detail)"
    ).bindparams(sa.bindparam("at", type_=tables.UtcDateTime()), sa.bindparam("detail", type_=sa.JSON()))
    with db.engine.begin() as conn:
        for i in range(3):
            conn.execute(insert, {"at": NOW, "actor": f"老用户{i}", "action": "key.create", "detail": {"i": i}})
    migrate.upgrade(db)
    store = Store(db, {})
    store.audit(OPERATOR, "target.pause", NOW, detail={"after": "migration"})
    entries = chain(store)
    assert [(e.seq, e.actor) for e in entries] == [(1, "老用户0"), (2, "老用户1"), (3, "老用户2"), (4, "credit-office")]
    verdict = store.verify_audit()
    assert verdict.intact, verdict.findings
    db.dispose()


@pytest.mark.postgres
def test_concurrent_writers_on_postgres_chain_in_one_order(pg_url: str) -> None:
    """Several connections append at once (single posts on the one-statement path, batches, operator actions):
    one total order, no fork, no gap."""
    db = Database(pg_url, pool_size=8)
    store = Store(db, {Kind.LICENCE: ("national", "portal")})
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(n: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(15):
                if n % 3 == 0:
                    post(store, licence(f"XK-{n}-{i}"))
                elif n % 3 == 1:
                    post(store, licence(f"XK-{n}-{i}-a"), licence(f"XK-{n}-{i}-b"))
                else:
                    store.audit(OPERATOR, "delivery.requeue", NOW, detail={"writer": n, "i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    entries = chain(store)
    assert len(entries) == 2 * 15 + 2 * 30 + 2 * 15
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    verdict = store.verify_audit()
    assert verdict.intact, verdict.findings
    db.dispose()


def test_api_and_scheduled_paths_name_their_actor(
    client: httpx.Client, store: Store, operator_key: str, settings: Settings, clock: ManualClock
) -> None:
    """The CLI path (OS user or --actor) is in tests/e2e/test_people_cli.py."""
    requeued = client.post("/api/v1/dead-letters/requeue", json={"ids": [1]}, headers=bearer(operator_key))
    assert requeued.status_code == 200
    housekeeping = Housekeeping(settings, store, clock, deadlines.from_settings(settings.deadlines), dict)
    Jobs(housekeeping).daily_report()
    entries = [(e.action, e.actor, e.role) for e in chain(store)]
    assert ("delivery.requeue", "credit-office", "operator") in entries
    assert ("report.created", "scheduler", "system") in entries
    assert store.verify_audit().intact
