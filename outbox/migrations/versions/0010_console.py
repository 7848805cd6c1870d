"""The operators' console: attempt excerpts with their retention index, and the indexes its search and overview use.

* ``attempt.request_excerpt`` / ``reply_excerpt`` (text, at most 8 KB each, written by the delivery engine) and
  ``ix_attempt_at`` so the nightly prune finds old excerpts without a scan;
* ``ix_record_source_id`` (search by 业务编号 across source systems); ``ix_delivery_open`` (backlog and oldest
  unpublished per target, partial); ``ix_delivery_published_at`` (published in the last hour / day);
* PostgreSQL only: ``pg_trgm`` and a trigram GIN index on the counterpart's name, so "name contains" is an index
  search over a million versions. pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it.

Revision ID: 0010
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"  # re-chained after h-health's 0008 (given as 0007)
branch_labels = None
depends_on = None

OPEN = "state IN ('pending', 'retry_wait', 'in_flight', 'awaiting_result')"


def upgrade() -> None:
    op.add_column("attempt", sa.Column("request_excerpt", sa.Text(), nullable=True))
    op.add_column("attempt", sa.Column("reply_excerpt", sa.Text(), nullable=True))
    op.create_index("ix_attempt_at", "attempt", ["at"])
    op.create_index("ix_record_source_id", "record", ["source_id"])
    op.create_index(
        "ix_delivery_open",
        "delivery",
        ["target", "created_at"],
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    op.create_index("ix_delivery_published_at", "delivery", ["published_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_record_version_counterpart_name ON record_version "
            "USING gin (((content -> 'counterpart') ->> 'name') gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_record_version_counterpart_name", table_name="record_version")
    op.drop_index("ix_delivery_published_at", table_name="delivery")
    op.drop_index("ix_delivery_open", table_name="delivery")
    op.drop_index("ix_record_source_id", table_name="record")
    op.drop_index("ix_attempt_at", table_name="attempt")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("reply_excerpt")
        batch.drop_column("request_excerpt")
