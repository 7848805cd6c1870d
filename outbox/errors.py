"""The store's errors. No SQLAlchemy or psycopg exception leaves ``outbox``; callers see only these.

StoreError
├── StoreUnavailable      the database cannot be reached or refused the connection (retry later)
├── StoreBusy             a transaction kept losing to concurrent ones (deadlock, serialisation, locked)
├── SchemaNotCurrent      the database is not migrated to the code's schema (run `credit-gateway migrate`)
├── RecordNotFound        no record with that business key
└── AmbiguousRecord       an operator asked for a source_id that several source systems use
"""

from __future__ import annotations


class StoreError(Exception):
    """The credit-gateway store failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class StoreUnavailable(StoreError):
    """The database cannot be reached. Check CREDIT_GATEWAY_DATABASE_URL and that the server is running."""


class StoreBusy(StoreError):
    """The database stayed too busy with concurrent writes; the request can be retried safely."""


class SchemaNotCurrent(StoreError):
    """The database schema is not at the newest version. Run `credit-gateway migrate`."""


class RecordNotFound(StoreError):
    """No record with that kind and source_id."""


class AmbiguousRecord(StoreError):
    """Several source systems use this source_id; name one with ?source_system=."""
