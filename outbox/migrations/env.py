"""Alembic environment: runs on the connection ``outbox.migrate`` hands over (or the URL in alembic.ini)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from outbox import tables

# An arbitrary 64-bit key shared by every gateway process: migrations run one at a time.
MIGRATION_LOCK = 7_431_200_000_001

config = context.config
target_metadata = tables.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///./credit-gateway.db")
    with engine.connect() as conn:
        _run(conn)
