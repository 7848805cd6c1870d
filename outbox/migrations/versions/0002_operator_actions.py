"""Operator actions: paused targets, and a fresh retry budget for requeued deliveries.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "target_state",
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target"),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_delivery_dead",
            ["target", "id"],
            unique=False,
            postgresql_where=sa.text("state = 'dead'"),
            sqlite_where=sa.text("state = 'dead'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_delivery_dead", postgresql_where=sa.text("state = 'dead'"), sqlite_where=sa.text("state = 'dead'")
        )
        batch_op.drop_column("retry_since")
    op.drop_table("target_state")
