"""Settled months' 公示率 counts (settled_standing) and the triggers that forget a month when its facts change.

A month's rows are deleted, in the writer's own transaction, whenever a record decided in that month is inserted,
deleted or changes what a standing reads (decision date, withdrawal, current version, kind, department), and
whenever one of its publish deliveries is inserted, deleted or changes standing-relevant columns (becomes or stops
being published, publication time, due date, version, target). On PostgreSQL the trigger first takes a shared
transaction-scoped advisory lock on the month; ``outbox.settled`` takes it exclusively (try-lock) before it
recounts and stores a month, so a fill never stores counts read before a change that commits after it. SQLite
needs no lock: its writers are serialised, and a fill is one ``INSERT … SELECT`` in a write transaction.

Revision ID: 0013
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from outbox.settled import SETTLED_LOCK
from outbox.tables import UtcDateTime

revision = "0013"
down_revision = "0010"  # after the console (0010); given as 0007, merged after 0008
branch_labels = None
depends_on = None

_RECORD_CHANGED = (
    "OLD.decided_on IS DISTINCT FROM NEW.decided_on OR OLD.withdrawn_at IS DISTINCT FROM NEW.withdrawn_at"
    " OR OLD.current_version IS DISTINCT FROM NEW.current_version OR OLD.kind IS DISTINCT FROM NEW.kind"
    " OR OLD.department IS DISTINCT FROM NEW.department"
)
_DELIVERY_CHANGED = (
    "(OLD.operation = 'publish' OR NEW.operation = 'publish') AND ("
    "(OLD.state = 'published') IS DISTINCT FROM (NEW.state = 'published')"
    " OR OLD.published_at IS DISTINCT FROM NEW.published_at OR OLD.due_date IS DISTINCT FROM NEW.due_date"
    " OR OLD.due_by IS DISTINCT FROM NEW.due_by OR OLD.due_date_basis IS DISTINCT FROM NEW.due_date_basis"
    " OR OLD.version IS DISTINCT FROM NEW.version OR OLD.target IS DISTINCT FROM NEW.target"
    " OR OLD.record_id IS DISTINCT FROM NEW.record_id OR OLD.operation IS DISTINCT FROM NEW.operation)"
)

# Inserts and deletes are handled once per statement (transition tables): a batch of 500 records with four
# deliveries each then costs two trigger calls, not 2,500. Updates stay per row, filtered in C by WHEN, so the
# lease and retry updates of the delivery loop never call the function.
_PG = f"""
CREATE FUNCTION settled_standing_forget(day date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF day IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock_shared({SETTLED_LOCK}, to_char(day, 'YYYYMM')::int);
    DELETE FROM settled_standing WHERE month = to_char(day, 'YYYY-MM');
END $$;
CREATE FUNCTION record_settled_forget_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM settled_standing_forget(m) FROM (SELECT DISTINCT date_trunc('month', decided_on)::date AS m FROM changed) s;
    RETURN NULL;
END $$;
CREATE FUNCTION delivery_settled_forget_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM settled_standing_forget(m) FROM (
        SELECT DISTINCT date_trunc('month', r.decided_on)::date AS m
        FROM changed d JOIN record r ON r.id = d.record_id WHERE d.operation = 'publish'
    ) s;
    RETURN NULL;
END $$;
CREATE FUNCTION record_settled_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM settled_standing_forget(OLD.decided_on);
    IF NEW.decided_on IS DISTINCT FROM OLD.decided_on THEN
        PERFORM settled_standing_forget(NEW.decided_on);
    END IF;
    RETURN NULL;
END $$;
CREATE FUNCTION delivery_settled_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM settled_standing_forget((SELECT decided_on FROM record WHERE id = OLD.record_id));
    IF NEW.record_id IS DISTINCT FROM OLD.record_id THEN
        PERFORM settled_standing_forget((SELECT decided_on FROM record WHERE id = NEW.record_id));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER record_settled_forget_insert AFTER INSERT ON record REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION record_settled_forget_rows();
CREATE TRIGGER record_settled_forget_delete AFTER DELETE ON record REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION record_settled_forget_rows();
CREATE TRIGGER record_settled_forget_update AFTER UPDATE ON record
    FOR EACH ROW WHEN ({_RECORD_CHANGED}) EXECUTE FUNCTION record_settled_forget();
CREATE TRIGGER delivery_settled_forget_insert AFTER INSERT ON delivery REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_settled_forget_rows();
CREATE TRIGGER delivery_settled_forget_delete AFTER DELETE ON delivery REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_settled_forget_rows();
CREATE TRIGGER delivery_settled_forget_update AFTER UPDATE ON delivery
    FOR EACH ROW WHEN ({_DELIVERY_CHANGED}) EXECUTE FUNCTION delivery_settled_forget();
"""

_SQLITE_OF_RECORD = "(SELECT strftime('%Y-%m', decided_on) FROM record WHERE id = {row}.record_id)"
_SQLITE_RECORD_CHANGED = _RECORD_CHANGED.replace("IS DISTINCT FROM", "IS NOT")
_SQLITE_DELIVERY_CHANGED = _DELIVERY_CHANGED.replace("IS DISTINCT FROM", "IS NOT")
_SQLITE = [
    "CREATE TRIGGER record_settled_forget_insert AFTER INSERT ON record BEGIN "
    "DELETE FROM settled_standing WHERE month = strftime('%Y-%m', NEW.decided_on); END",
    "CREATE TRIGGER record_settled_forget_delete AFTER DELETE ON record BEGIN "
    "DELETE FROM settled_standing WHERE month = strftime('%Y-%m', OLD.decided_on); END",
    f"CREATE TRIGGER record_settled_forget_update AFTER UPDATE ON record WHEN {_SQLITE_RECORD_CHANGED} BEGIN "
    "DELETE FROM settled_standing WHERE month IN "
    "(strftime('%Y-%m', OLD.decided_on), strftime('%Y-%m', NEW.decided_on)); END",
    "CREATE TRIGGER delivery_settled_forget_insert AFTER INSERT ON delivery WHEN NEW.operation = 'publish' BEGIN "
    f"DELETE FROM settled_standing WHERE month = {_SQLITE_OF_RECORD.format(row='NEW')}; END",
    "CREATE TRIGGER delivery_settled_forget_delete AFTER DELETE ON delivery WHEN OLD.operation = 'publish' BEGIN "
    f"DELETE FROM settled_standing WHERE month = {_SQLITE_OF_RECORD.format(row='OLD')}; END",
    f"CREATE TRIGGER delivery_settled_forget_update AFTER UPDATE ON delivery WHEN {_SQLITE_DELIVERY_CHANGED} BEGIN "
    f"DELETE FROM settled_standing WHERE month IN ({_SQLITE_OF_RECORD.format(row='OLD')}, "
    f"{_SQLITE_OF_RECORD.format(row='NEW')}); END",
]
TRIGGERS = {
    table: tuple(f"{table}_settled_forget_{event}" for event in ("insert", "delete", "update"))
    for table in ("record", "delivery")
}


def upgrade() -> None:
    op.create_table(
        "settled_standing",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("on_time", "late", "overdue", "pending", "not_applicable", "unknown", "provisional")
        ),
        sa.Column("last_due_date", sa.Date(), nullable=True),
        sa.Column("last_published_at", UtcDateTime(), nullable=True),
        sa.Column("last_withdrawn_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("month", "target", "kind", "department"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG)
    else:
        for statement in _SQLITE:
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, names in TRIGGERS.items():
        for name in names:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}" if postgres else f"DROP TRIGGER IF EXISTS {name}")
    if postgres:
        for table in ("record", "delivery"):
            op.execute(f"DROP FUNCTION {table}_settled_forget()")
            op.execute(f"DROP FUNCTION {table}_settled_forget_rows()")
        op.execute("DROP FUNCTION settled_standing_forget(date)")
    op.drop_table("settled_standing")
