"""Deadlines, reconciliation runs and stored reports.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UNPUBLISHED = "operation = 'publish' AND state IN ('pending', 'retry_wait', 'in_flight', 'awaiting_result', 'dead')"
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_delivery_unpublished_due",
            ["due_date"],
            unique=False,
            postgresql_where=sa.text(UNPUBLISHED),
            sqlite_where=sa.text(UNPUBLISHED),
        )
    op.create_table(
        "reconciliation_run",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("mismatched", sa.Integer(), nullable=False),
        sa.Column("extra", sa.Integer(), nullable=False),
        sa.Column("requeued", sa.Integer(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reconciliation_run_target", "reconciliation_run", ["target"])
    op.create_table(
        "report_run",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_run_period", "report_run", ["period"])


def downgrade() -> None:
    op.drop_index("ix_report_run_period", table_name="report_run")
    op.drop_table("report_run")
    op.drop_index("ix_reconciliation_run_target", table_name="reconciliation_run")
    op.drop_table("reconciliation_run")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_delivery_unpublished_due", postgresql_where=sa.text(UNPUBLISHED), sqlite_where=sa.text(UNPUBLISHED)
        )
        batch_op.drop_column("due_by")
