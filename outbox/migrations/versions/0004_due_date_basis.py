"""Due-date basis (official or provisional calendar) on deliveries, and a record's origin (API or import).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PROVISIONAL = "due_date_basis = 'provisional'"


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("due_date_basis", sa.String(length=12), nullable=True))
        batch_op.create_index(
            "ix_delivery_provisional",
            ["due_date"],
            unique=False,
            postgresql_where=sa.text(PROVISIONAL),
            sqlite_where=sa.text(PROVISIONAL),
        )
    # Every due date stored so far came from a published schedule (the calendar refused unknown years).
    op.execute("UPDATE delivery SET due_date_basis = 'official' WHERE due_date IS NOT NULL")
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=8), nullable=False, server_default="api"))


def downgrade() -> None:
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_column("origin")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_provisional")
        batch_op.drop_column("due_date_basis")
