"""People who sign in (person, person_session, sign_in_failure) and the audit log as a hash chain.

Existing audit entries are chained in id order here, once; from then on PostgreSQL's ``audit_event_chain``
trigger chains every insert (the SQL below computes exactly the bytes of ``outbox.audit.canonical``) and SQLite's
are chained by ``outbox.audit.append``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from outbox.audit import CHAIN_LOCK, GENESIS, entry_hash
from outbox.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_PG_CHAIN = f"""
CREATE FUNCTION audit_field(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN v IS NULL THEN '~' ELSE octet_length(v)::text || ':' || v END
$$;
CREATE FUNCTION audit_event_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head record;
BEGIN
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK});
    SELECT seq, entry_hash INTO head FROM audit_event WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    NEW.seq := coalesce(head.seq, 0) + 1;
    NEW.prev_hash := coalesce(head.entry_hash, '{GENESIS}');
    NEW.entry_hash := encode(sha256(convert_to(
        audit_field(NEW.seq::text) || '|' ||
        audit_field(to_char(NEW.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) || '|' ||
        audit_field(NEW.actor) || '|' || audit_field(NEW.role) || '|' || audit_field(NEW.action) || '|' ||
        audit_field(NEW.kind) || '|' || audit_field(NEW.source_id) || '|' || audit_field(NEW.record_id::text) || '|' ||
        audit_field(NEW.detail::text) || '|' || audit_field(NEW.prev_hash),
        'UTF8')), 'hex');
    RETURN NEW;
END $$;
CREATE TRIGGER audit_event_chain BEFORE INSERT ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_chain();
"""
_SQLITE_REFUSE = (
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END"
)


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "person_session",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", BigId, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("person_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_person_session_person_id"), ["person_id"], unique=False)
    op.create_table(
        "sign_in_failure",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sign_in_failure", schema=None) as batch_op:
        batch_op.create_index("ix_sign_in_failure_name", ["name_hash", "at"], unique=False)

    # Plain ALTER TABLE (no batch copy): SQLite keeps the table, and with it the append-only triggers.
    op.add_column("audit_event", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_event", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_event", sa.Column("entry_hash", sa.String(length=64), nullable=True))
    _chain_existing()
    op.create_index("uq_audit_seq", "audit_event", ["seq"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_CHAIN)


def _chain_existing() -> None:
    """Link the entries written before this revision, in id order (the order they were written in)."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, at, actor, role, action, kind, source_id, record_id, CAST(detail AS TEXT) AS detail "
            "FROM audit_event ORDER BY id"
        ).columns(at=UtcDateTime())
    ).all()
    if not rows:
        return
    updates, prev = [], GENESIS
    for seq, row in enumerate(rows, start=1):
        content = {k: getattr(row, k) for k in ("at", "actor", "role", "action", "kind", "source_id", "record_id")}
        digest = entry_hash(seq=seq, **content, detail=row.detail, prev_hash=prev)
        updates.append({"row_id": row.id, "s": seq, "p": prev, "h": digest})
        prev = digest
    postgres = conn.dialect.name == "postgresql"
    op.execute(
        "ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_update"
        if postgres
        else "DROP TRIGGER audit_event_no_update"
    )
    conn.execute(
        sa.text("UPDATE audit_event SET seq = :s, prev_hash = :p, entry_hash = :h WHERE id = :row_id"), updates
    )
    op.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_no_update" if postgres else _SQLITE_REFUSE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_event_chain ON audit_event")
        op.execute("DROP FUNCTION audit_event_chain()")
        op.execute("DROP FUNCTION audit_field(text)")
    op.drop_index("uq_audit_seq", table_name="audit_event")
    for column in ("entry_hash", "prev_hash", "seq"):  # no batch copy on SQLite: it would lose the triggers
        op.execute(f"ALTER TABLE audit_event DROP COLUMN {column}")
    with op.batch_alter_table("sign_in_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_sign_in_failure_name")
    op.drop_table("sign_in_failure")
    with op.batch_alter_table("person_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_session_person_id"))
    op.drop_table("person_session")
    op.drop_table("person")
