"""Report mail (an outbox of its own) and report schedules.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MAIL_OPEN = "state IN ('queued', 'retry_wait', 'sending')"


def upgrade() -> None:
    op.create_table(
        "report_mail",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("report_id", BigId, sa.ForeignKey("report_run.id"), nullable=False),
        sa.Column("schedule", sa.String(length=32), nullable=False),
        sa.Column("edition", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=2000), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("edition", "recipient", "round", name="uq_report_mail_edition"),
    )
    op.create_index("ix_report_mail_report_id", "report_mail", ["report_id"])
    op.create_index(
        "ix_report_mail_open",
        "report_mail",
        ["next_attempt_at"],
        postgresql_where=sa.text(MAIL_OPEN),
        sqlite_where=sa.text(MAIL_OPEN),
    )
    op.create_table(
        "report_schedule",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("report_schedule")
    op.drop_index("ix_report_mail_open", table_name="report_mail")
    op.drop_index("ix_report_mail_report_id", table_name="report_mail")
    op.drop_table("report_mail")
