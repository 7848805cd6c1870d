"""Bring a database to the newest schema, and tell whether it is there (for /readyz)."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from outbox.database import Database, translate_errors


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "outbox:migrations")
    return config


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(db: Database) -> str:
    """Migrate to head; safe to call from several processes at once (PostgreSQL takes an advisory lock)."""
    config = _config()
    with translate_errors(), db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return head()


def current(db: Database) -> str | None:
    def read(conn: object) -> str | None:
        # Reading the revision says "Context impl SQLiteImpl." at INFO: noise on a command's stderr (import)
        chatty = logging.getLogger("alembic.runtime.migration")
        level = chatty.level
        chatty.setLevel(logging.WARNING)
        try:
            return MigrationContext.configure(conn).get_current_revision()  # type: ignore[arg-type]
        finally:
            chatty.setLevel(level)

    return db.read(read)


def is_current(db: Database) -> bool:
    return current(db) == head()
