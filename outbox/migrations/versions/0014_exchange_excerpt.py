"""Exchange excerpts stored once per exchange (``exchange_excerpt``), referenced by each attempt (``excerpt_id``);
the due index in the lease's order.

0010 kept the excerpts on ``attempt``, so a batch of 500 items sent in one request wrote the same 16 KB 500
times: 8 MB per batch, and a drain of 10,000 records spent most of its database time writing them. Existing
excerpts move to the new table under their attempt's id (so no row needs a lookup to be re-pointed).

``ix_delivery_due`` gains ``id``, the lease's tie-break: a lease reads it in order and stops at its limit instead
of sorting every due row of the target (``outbox.leases``).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from outbox.tables import BigId, UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_HAS_EXCERPT = "request_excerpt IS NOT NULL OR reply_excerpt IS NOT NULL"
_DUE = "state IN ('pending', 'retry_wait')"


def _due_index(*columns: str) -> None:
    op.drop_index("ix_delivery_due", table_name="delivery")
    op.create_index(
        "ix_delivery_due", "delivery", list(columns), postgresql_where=sa.text(_DUE), sqlite_where=sa.text(_DUE)
    )


def upgrade() -> None:
    op.create_table(
        "exchange_excerpt",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("request", sa.Text(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
    )
    op.create_index("ix_exchange_excerpt_at", "exchange_excerpt", ["at"])
    op.add_column("attempt", sa.Column("excerpt_id", BigId, nullable=True))
    op.execute(
        "INSERT INTO exchange_excerpt (id, at, request, reply) "
        f"SELECT id, at, request_excerpt, reply_excerpt FROM attempt WHERE {_HAS_EXCERPT}"
    )
    op.execute(f"UPDATE attempt SET excerpt_id = id WHERE {_HAS_EXCERPT}")
    if op.get_bind().dialect.name == "postgresql":  # the explicit ids above did not advance the sequence
        op.execute(
            "SELECT setval(pg_get_serial_sequence('exchange_excerpt', 'id'), "
            "coalesce((SELECT max(id) FROM exchange_excerpt), 0) + 1, false)"
        )
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("reply_excerpt")
        batch.drop_column("request_excerpt")
    _due_index("target", "next_attempt_at", "id")


def downgrade() -> None:
    _due_index("target", "next_attempt_at")
    op.add_column("attempt", sa.Column("request_excerpt", sa.Text(), nullable=True))
    op.add_column("attempt", sa.Column("reply_excerpt", sa.Text(), nullable=True))
    op.execute(
        "UPDATE attempt SET "
        "request_excerpt = (SELECT request FROM exchange_excerpt e WHERE e.id = attempt.excerpt_id), "
        "reply_excerpt = (SELECT reply FROM exchange_excerpt e WHERE e.id = attempt.excerpt_id) "
        "WHERE excerpt_id IS NOT NULL"
    )
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("excerpt_id")
    op.drop_index("ix_exchange_excerpt_at", table_name="exchange_excerpt")
    op.drop_table("exchange_excerpt")
