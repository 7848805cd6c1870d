"""The store's contract, run on SQLite and on PostgreSQL (the ``db_url`` fixture)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from outbox import errors, keys, migrate, tables
from outbox.database import Database
from outbox.ingest import Actor, Incoming, Stored
from outbox.states import Operation, idempotency_key
from outbox.store import AtomicBatchRefused, Store
from schemas.enums import Kind, WithdrawReason
from schemas.validation import Canonical, validate
from tests.conftest import NOW
from tests.factories import licence, penalty

SOURCE = Actor("approval-system", "source")
TODAY = dt.date(2026, 11, 25)


def incoming(data: dict[str, Any], kind: Kind = Kind.LICENCE) -> Incoming:
    canonical = validate(kind, data, today=TODAY)
    assert isinstance(canonical, Canonical)
    return Incoming(canonical, data)


def post(store: Store, *records: dict[str, Any], kind: Kind = Kind.LICENCE, atomic: bool = False) -> list[Stored]:
    return store.ingest(
        source_system="approval-system",
        kind=kind,
        items=[incoming(r, kind) for r in records],
        actor=SOURCE,
        now=NOW,
        atomic=atomic,
    )


def withdraw(
    store: Store,
    source_id: str = "XK-2026-000123",
    reason: WithdrawReason = WithdrawReason.REVOKED,
    note: str | None = None,
) -> Any:
    return store.withdraw(
        source_system="approval-system",
        kind=Kind.LICENCE,
        source_id=source_id,
        reason=reason,
        note=note,
        actor=SOURCE,
        now=NOW,
    )


def rows(store: Store, table: sa.Table, *where: Any) -> list[Any]:
    return store.db.read(lambda conn: conn.execute(sa.select(table).where(*where).order_by(table.c.id)).all())


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    assert migrate.is_current(store.db)

    def diff(conn: sa.Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(ctx, tables.metadata) if d[0] != "remove_table"]

    assert store.db.read(diff) == []


def test_migration_downgrade_and_upgrade_round_trip(db_url: str) -> None:
    from alembic import command

    db = Database(db_url)
    config = migrate._config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert migrate.current(db) is None
    migrate.upgrade(db)
    assert migrate.is_current(db)
    db.dispose()


def test_migration_0014_moves_attempt_excerpts_to_their_own_table_and_back(db_url: str) -> None:
    from alembic import command

    db = Database(db_url)
    config = migrate._config()

    def to(revision: str, step: Any = command.downgrade) -> None:
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            step(config, revision)

    post(Store(db, {Kind.LICENCE: ("national",)}), licence())
    to("0013")
    with db.engine.begin() as conn:
        did = conn.execute(sa.text("SELECT id FROM delivery")).scalar_one()
        for request in ("POST /a", None, "POST /c"):
            conn.execute(
                sa.text(
                    "INSERT INTO attempt (delivery_id, at, duration_ms, outcome, request_excerpt, reply_excerpt) "
                    "VALUES (:d, CURRENT_TIMESTAMP, 1, 'accepted', :q, :a)"
                ),
                {"d": did, "q": request, "a": request and f"200 for {request}"},
            )
    to("head", command.upgrade)
    read = "SELECT a.excerpt_id, e.request, e.reply FROM attempt a LEFT JOIN exchange_excerpt e ON e.id = a.excerpt_id"
    with db.engine.begin() as conn:
        moved = conn.execute(sa.text(read + " ORDER BY a.id")).all()
        made = conn.execute(
            sa.insert(tables.exchange_excerpt).values(at=NOW, request="new").returning(tables.exchange_excerpt.c.id)
        ).scalar_one()
    assert [(r.request, r.reply) for r in moved] == [
        ("POST /a", "200 for POST /a"),
        (None, None),
        ("POST /c", "200 for POST /c"),
    ]
    assert made > max(r.excerpt_id for r in moved if r.excerpt_id is not None)  # the sequence moved past them
    to("0013")
    with db.engine.begin() as conn:
        back = conn.execute(sa.text("SELECT request_excerpt, reply_excerpt FROM attempt ORDER BY id")).all()
    assert [tuple(r) for r in back] == [("POST /a", "200 for POST /a"), (None, None), ("POST /c", "200 for POST /c")]
    to("head", command.upgrade)
    db.dispose()


def test_first_post_creates_record_version_and_one_delivery_per_target(store: Store) -> None:
    [stored] = post(store, licence())
    assert (stored.status, stored.version) == ("created", 1)
    assert [d["target"] for d in stored.deliveries] == ["national", "provincial", "municipal", "portal"]
    [rec] = rows(store, tables.record)
    assert (rec.source_system, rec.kind, rec.source_id, rec.current_version) == (
        "approval-system",
        "licences",
        "XK-2026-000123",
        1,
    )
    assert rec.decided_on == dt.date(2026, 11, 20) and rec.department == "行政审批科"
    [version] = rows(store, tables.record_version)
    assert version.content["counterpart"]["uscc"] == "91431200MA4L7P2K85"
    assert version.submitted == licence()
    deliveries = rows(store, tables.delivery)
    assert {(d.target, d.state, d.version, d.operation) for d in deliveries} == {
        (t, "pending", 1, "publish") for t in ("national", "provincial", "municipal", "portal")
    }
    assert {d.idempotency_key for d in deliveries} == {
        idempotency_key(rec.id, 1, Operation.PUBLISH, t) for t in ("national", "provincial", "municipal", "portal")
    }
    assert all(d.next_attempt_at == NOW and d.attempts == 0 for d in deliveries)
    [audit] = rows(store, tables.audit_event)
    assert (audit.action, audit.actor, audit.role, audit.kind, audit.source_id, audit.record_id, audit.detail) == (
        "ingest.created",
        "approval-system",
        "source",
        "licences",
        "XK-2026-000123",
        rec.id,
        {"version": 1},
    )
    assert (rec.created_at, version.received_at, audit.at) == (NOW, NOW, NOW)


def test_commitments_skip_the_portal(store: Store) -> None:
    from tests.factories import commitment

    [stored] = post(store, commitment(), kind=Kind.COMMITMENT)
    assert [d["target"] for d in stored.deliveries] == ["national", "provincial", "municipal"]


def test_identical_repost_changes_nothing(store: Store) -> None:
    post(store, licence())
    [again] = post(store, licence(counterpart__uscc=" 91431200ma4l7p2k85 "))  # same content once normalised
    assert (again.status, again.version) == ("unchanged", 1)
    assert len(again.deliveries) == 4
    assert len(rows(store, tables.record_version)) == 1
    assert len(rows(store, tables.delivery)) == 4


def test_new_content_makes_a_version_that_supersedes_pending_deliveries(store: Store) -> None:
    post(store, licence())
    [second] = post(store, licence(content="变更后的许可内容"))
    assert (second.status, second.version) == ("updated", 2)
    [rec] = rows(store, tables.record)
    assert rec.current_version == 2
    states = {(d.version, d.state) for d in rows(store, tables.delivery)}
    assert states == {(1, "superseded"), (2, "pending")}
    assert len(rows(store, tables.delivery, tables.delivery.c.state == "superseded")) == 4


def test_a_published_delivery_is_not_superseded(store: Store) -> None:
    post(store, licence())
    store.db.transact(
        lambda c: c.execute(
            sa.update(tables.delivery).where(tables.delivery.c.target == "national").values(state="published")
        )
    )
    post(store, licence(content="变更后的许可内容"))
    v1 = {d.target: d.state for d in rows(store, tables.delivery, tables.delivery.c.version == 1)}
    assert v1 == {
        "national": "published",
        "provincial": "superseded",
        "municipal": "superseded",
        "portal": "superseded",
    }


def test_batch_mixes_created_updated_unchanged_in_request_order(store: Store) -> None:
    post(store, licence("A"), licence("B"))
    results = post(store, licence("C"), licence("B", content="新内容"), licence("A"))
    assert [(r.source_id, r.status, r.version) for r in results] == [
        ("C", "created", 1),
        ("B", "updated", 2),
        ("A", "unchanged", 1),
    ]
    audit = rows(store, tables.audit_event)
    assert [a.action for a in audit] == ["ingest.created"] * 2 + [
        "ingest.unchanged",
        "ingest.updated",
        "ingest.created",
    ]


def test_same_source_id_in_another_kind_or_system_is_another_record(store: Store) -> None:
    post(store, licence("X-1"))
    post(store, penalty("X-1"), kind=Kind.PENALTY)
    store.ingest(
        source_system="enforcement-system",
        kind=Kind.LICENCE,
        items=[incoming(licence("X-1"))],
        actor=Actor("enforcement-system", "source"),
        now=NOW,
    )
    assert len(rows(store, tables.record)) == 3


def test_withdraw_of_an_unsent_record_cancels_everywhere(store: Store) -> None:
    post(store, licence())
    result = withdraw(store, "XK-2026-000123", WithdrawReason.REVOKED, "决定撤销")
    assert not result.already
    assert {d["state"] for d in result.deliveries} == {"cancelled"}
    publishes = rows(store, tables.delivery, tables.delivery.c.operation == "publish")
    assert {d.state for d in publishes} == {"superseded"}
    [rec] = rows(store, tables.record)
    assert (rec.withdraw_reason, rec.withdraw_note, rec.withdrawn_at) == ("revoked", "决定撤销", NOW)


def test_withdraw_goes_to_targets_that_may_hold_the_record(store: Store) -> None:
    post(store, licence())
    d = tables.delivery
    store.db.transact(
        lambda c: (
            c.execute(sa.update(d).where(d.c.target == "national").values(state="published")),
            c.execute(sa.update(d).where(d.c.target == "provincial").values(state="awaiting_result")),
            c.execute(sa.update(d).where(d.c.target == "municipal").values(state="retry_wait", attempts=1)),
        )
    )
    result = withdraw(store, "XK-2026-000123", WithdrawReason.CREDIT_REPAIR, None)
    assert {x["target"]: x["state"] for x in result.deliveries} == {
        "national": "pending",
        "provincial": "pending",
        "municipal": "pending",
        "portal": "cancelled",
    }
    withdraws = rows(store, d, d.c.operation == "withdraw")
    assert all(w.idempotency_key.endswith(f"-w-{w.target}") for w in withdraws)
    again = withdraw(store, "XK-2026-000123", WithdrawReason.OTHER, None)
    assert again.already and len(rows(store, d, d.c.operation == "withdraw")) == 4


def test_withdrawn_record_refuses_new_content_but_not_a_repeat(store: Store) -> None:
    post(store, licence())
    withdraw(store, "XK-2026-000123", WithdrawReason.REVOKED, None)
    assert post(store, licence())[0].status == "unchanged"
    assert post(store, licence(content="复活"))[0].status == "withdrawn"
    assert len(rows(store, tables.record_version)) == 1


def test_atomic_batch_with_a_refused_item_writes_nothing(store: Store) -> None:
    post(store, licence("W"))
    withdraw(store, "W", WithdrawReason.REVOKED, None)
    before = (len(rows(store, tables.record)), len(rows(store, tables.audit_event)))
    with pytest.raises(AtomicBatchRefused) as refused:
        post(store, licence("N1"), licence("W", content="新"), atomic=True)
    assert [r.status for r in refused.value.results] == ["created", "withdrawn"]
    assert (len(rows(store, tables.record)), len(rows(store, tables.audit_event))) == before


def test_withdraw_of_an_unknown_record(store: Store) -> None:
    with pytest.raises(errors.RecordNotFound):
        withdraw(store, "nope", WithdrawReason.OTHER, None)


def test_record_view_shows_versions_and_deliveries(store: Store) -> None:
    post(store, licence())
    post(store, licence(content="第二版"))
    view = store.record_view(Kind.LICENCE, "XK-2026-000123", "approval-system")
    assert view["version"] == 2 and view["record"]["content"] == "第二版"
    assert [v["version"] for v in view["versions"]] == [1, 2]
    assert len(view["deliveries"]) == 8 and view["withdrawn"] is None
    with pytest.raises(errors.RecordNotFound):
        store.record_view(Kind.PENALTY, "XK-2026-000123", None)


def test_operator_lookup_without_source_system_must_be_unambiguous(store: Store) -> None:
    post(store, licence("S"))
    assert store.source_system_of(Kind.LICENCE, "S") == "approval-system"
    store.ingest(
        source_system="other-system",
        kind=Kind.LICENCE,
        items=[incoming(licence("S"))],
        actor=Actor("other-system", "source"),
        now=NOW,
    )
    with pytest.raises(errors.AmbiguousRecord):
        store.record_view(Kind.LICENCE, "S", None)


def test_keys_are_stored_hashed_and_revocable(store: Store) -> None:
    key, info = store.create_key(name="approval-system", role="source", kinds=("licences",), actor="t", now=NOW)
    [row] = rows(store, tables.api_key)
    assert key not in (row.key_hash, row.key_prefix) and row.key_hash == keys.digest(key)
    found = store.lookup_key(key)
    assert found is not None and found.kinds == ("licences",) and found.revoked_at is None
    assert store.lookup_key(key + "x") is None
    assert store.revoke_key(prefix=info.prefix, actor="t", now=NOW) == 1
    revoked = store.lookup_key(key)
    assert revoked is not None and revoked.revoked_at == NOW
    assert [a.action for a in rows(store, tables.audit_event)] == ["key.create", "key.revoke"]


def test_audit_log_is_append_only(store: Store) -> None:
    post(store, licence())
    for statement in (sa.update(tables.audit_event).values(actor="someone-else"), sa.delete(tables.audit_event)):
        with pytest.raises(errors.StoreError, match="append-only"):
            store.db.transact(lambda c, s=statement: c.execute(s))
    assert len(rows(store, tables.audit_event)) == 1


def test_unreachable_database_is_a_store_error() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(errors.StoreUnavailable):
        migrate.is_current(db)
    db.dispose()


def test_dead_pooled_connections_are_replaced(pg_template: str) -> None:
    """A PostgreSQL restart kills pooled connections; the next request must not fail because of it."""
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN, _pg_admin, _pg_url

    name = f"cgtest_stale_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}" STRATEGY FILE_COPY')
    store = Store(Database(_pg_url(name), pool_size=2), {Kind.LICENCE: ("national",)})
    try:
        post(store, licence("before"))
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        assert post(store, licence("after"))[0].status == "created"
        assert store.record_view(Kind.LICENCE, "before", None)["version"] == 1
    finally:
        store.db.dispose()
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_batch_writes_what_single_posts_write(store: Store) -> None:
    """Batches take another path on PostgreSQL (versions and deliveries inserted over arrays): the rows must be the
    ones the one-record path writes, column for column."""
    singles = [licence(f"S-{i}", content=f"许可内容{i}", decision_date=f"2026-11-{10 + i}") for i in range(3)]
    batch = [{**r, "source_id": r["source_id"].replace("S-", "B-")} for r in singles]
    for r in singles:
        post(store, r)
    post(store, *batch)
    post(store, {**batch[0], "content": "更正后的许可内容"}, batch[1])  # a new version beside an unchanged one

    def written(prefix: str) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for rec in rows(store, tables.record, tables.record.c.source_id.like(f"{prefix}-%")):
            out.append((rec.source_id[2:], rec.kind, rec.department, rec.decided_on, rec.current_version, rec.origin))
            out.append((rec.created_at, rec.source_system, len(rec.content_hash)))
            for v in rows(store, tables.record_version, tables.record_version.c.record_id == rec.id):
                content = {k: value for k, value in v.content.items() if k != "source_id"}
                out.append((rec.source_id[2:], v.version, content, v.received_at, v.content["decision_date"]))
                assert v.submitted["source_id"] == rec.source_id
            for d in rows(store, tables.delivery, tables.delivery.c.record_id == rec.id):
                key = idempotency_key(rec.id, d.version, Operation.PUBLISH, d.target)
                assert d.idempotency_key == key
                out.append((rec.source_id[2:], d.version, d.target, d.state, d.due_date, d.due_by, d.due_date_basis))
        return out

    post(store, {**singles[0], "content": "更正后的许可内容"}, singles[1])
    from_batches = written("B")
    assert from_batches == written("S")
    assert any(row[1] == 2 for row in from_batches) and all(row[4] is not None for row in from_batches if len(row) == 7)
