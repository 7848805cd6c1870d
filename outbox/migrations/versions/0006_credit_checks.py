"""Credit checks before approval (事前监管) and their measures (联合奖惩); subject-code indexes on record versions.

The subject indexes are expression indexes over the stored JSON (``counterpart.uscc`` and
``counterpart.id_number``), so a check finds a subject's records among millions without a column the ingest path
would have to fill. ``outbox.checks`` queries exactly these expressions. Kept checks refuse UPDATE (a trigger):
a query record is never altered; retention may delete whole rows.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SUBJECT_PATHS = ("uscc", "id_number")
TABLES = ("credit_check", "credit_check_measure")


def subject_expression(dialect: str, path: str) -> str:
    if dialect == "postgresql":
        return f"(content -> 'counterpart' ->> '{path}')"
    return f"json_extract(content, '$.counterpart.{path}')"


def upgrade() -> None:
    op.create_table(
        "credit_check",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("check_date", sa.Date(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("subject_code", sa.String(length=64), nullable=False),
        sa.Column("subject_id_type", sa.String(length=32), nullable=True),
        sa.Column("subject_name", sa.String(length=200), nullable=True),
        sa.Column("matter", sa.String(length=500), nullable=False),
        sa.Column("matter_type", sa.String(length=16), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("national", sa.String(length=16), nullable=False),
        sa.Column("advice", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credit_check_checked_at", "credit_check", ["checked_at"])
    op.create_index("ix_credit_check_subject_code", "credit_check", ["subject_code"])
    op.create_index("ix_credit_check_department", "credit_check", ["department", "checked_at"])
    op.create_table(
        "credit_check_measure",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("check_id", BigId, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["check_id"], ["credit_check.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credit_check_measure_check_id", "credit_check_measure", ["check_id"])
    dialect = op.get_bind().dialect.name
    for path in SUBJECT_PATHS:
        expression = subject_expression(dialect, path)
        op.execute(f"CREATE INDEX ix_record_version_subject_{path} ON record_version ({expression})")
    for table in TABLES:
        if dialect == "postgresql":
            op.execute(
                f"CREATE FUNCTION {table}_is_kept() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"RAISE EXCEPTION '{table} is never altered: UPDATE refused'; END $$"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_is_kept()"
            )
        else:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is never altered: UPDATE refused'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER {table}_no_update ON {table}")
            op.execute(f"DROP FUNCTION {table}_is_kept()")
        else:
            op.execute(f"DROP TRIGGER {table}_no_update")
    for path in SUBJECT_PATHS:
        op.drop_index(f"ix_record_version_subject_{path}", table_name="record_version")
    op.drop_index("ix_credit_check_measure_check_id", table_name="credit_check_measure")
    op.drop_table("credit_check_measure")
    op.drop_index("ix_credit_check_department", table_name="credit_check")
    op.drop_index("ix_credit_check_subject_code", table_name="credit_check")
    op.drop_index("ix_credit_check_checked_at", table_name="credit_check")
    op.drop_table("credit_check")
