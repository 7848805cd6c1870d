"""Engines for SQLite (the default) and PostgreSQL (production), and the one place driver errors are translated.

SQLite notes: WAL so readers never wait for the writer, foreign keys on, a busy timeout for other processes,
and write transactions opened with ``BEGIN IMMEDIATE`` behind a process-wide lock. Without ``IMMEDIATE`` two
threads that both read before writing deadlock on the lock upgrade and one fails with "database is locked";
the lock turns that contention into an orderly queue instead of SQLite's sleep-and-poll busy handler.

PostgreSQL notes: psycopg 3; deadlocks and serialisation failures are retried (bounded, with jitter) by
``Database.transact``; they are the only errors worth retrying inside one request.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from outbox import errors

T = TypeVar("T")

# SQLSTATEs worth one more try: serialization_failure, deadlock_detected, lock_not_available.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


class _Transient(Exception):
    """A transaction lost to a concurrent one; running it again is safe."""


class _StaleConnection(_Transient):
    """The pooled connection was dead (server restart, idle timeout); nothing ran, so running again is safe."""


def normalise_url(url: str) -> URL:
    """Accept ``postgresql://`` and ``postgres://`` and use psycopg 3 for them."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, *, pool_size: int = 10, sqlite_synchronous: str = "FULL", **options: Any) -> Engine:
    parsed = normalise_url(url)
    common: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
            **common,
        )
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    # No pool_pre_ping: it costs a round trip per checkout. A connection found dead is invalidated by
    # SQLAlchemy and ``Database.transact`` runs the work again on a fresh one.
    return sa.create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, **common, **options)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (SQLAlchemy's pysqlite recipe)
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", f"synchronous={synchronous}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver exceptions into the store's own (see ``outbox.errors``)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate in _TRANSIENT_SQLSTATES or "database is locked" in str(exc.orig):
            raise _Transient(str(exc.orig)) from exc
        if exc.connection_invalidated:  # a pooled connection the server had closed: try a fresh one
            raise _StaleConnection(str(exc.orig)) from exc
        if exc.connection_invalidated or isinstance(exc, sa.exc.InterfaceError) or _is_connect_error(exc):
            raise errors.StoreUnavailable() from exc
        raise errors.StoreError(f"database error: {type(exc.orig).__name__}: {exc.orig}") from exc
    except sa.exc.SQLAlchemyError as exc:
        raise errors.StoreError(f"database error: {exc}") from exc


def _is_connect_error(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return isinstance(exc, sa.exc.OperationalError) and any(
        hint in text for hint in ("connection", "could not connect", "unable to open database", "server closed")
    )


@functools.cache
def _retrying(attempts: int) -> Retrying:
    """A transaction that lost to a concurrent one (serialisation failure, deadlock, SQLite busy) runs again soon.

    One policy per number of attempts, built once: tenacity keeps a run's state in a thread-local, so threads share
    it safely (none runs a transaction inside another), and building it cost a few percent of a single post."""
    return Retrying(
        retry=retry_if_exception_type(_Transient),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.005, max=0.25),
        reraise=True,
    )


class Database:
    """An engine plus the transaction discipline the store relies on."""

    def __init__(self, url: str, *, pool_size: int = 10, sqlite_synchronous: str = "FULL") -> None:
        self.engine = make_engine(url, pool_size=pool_size, sqlite_synchronous=sqlite_synchronous)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._write_lock = threading.Lock() if self.is_sqlite else None
        # ``autocommit``'s own pool on PostgreSQL, its connections in AUTOCOMMIT from the start: switching a pooled
        # connection there and back at each checkout cost a tenth of a single post's CPU. No connection is opened
        # before the first use. SQLite (one file, one lock) keeps switching connections of the one pool.
        self._autocommit_engine = (
            make_engine(url, pool_size=pool_size, isolation_level="AUTOCOMMIT")
            if self.is_postgres
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    def transact(self, work: Callable[[Connection], T], *, attempts: int = 6) -> T:
        """Run ``work`` in one write transaction, again from the start if it lost to a concurrent one."""
        retrying = _retrying(attempts)
        try:
            for attempt in retrying:
                with attempt, self._writing() as conn:
                    return work(conn)
        except _StaleConnection as exc:
            raise errors.StoreUnavailable() from exc
        except _Transient as exc:
            raise errors.StoreBusy() from exc
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def autocommit(self, work: Callable[[Connection], T], *, attempts: int = 6) -> T:
        """Run ``work``, one statement, as its own transaction (AUTOCOMMIT): the server commits it at once, with
        no round trip to the client in between. Retried like ``transact``."""
        retrying = _retrying(attempts)
        try:
            for attempt in retrying:
                with attempt, translate_errors(), self._autocommit_engine.connect() as conn:
                    return work(conn)
        except _StaleConnection as exc:
            raise errors.StoreUnavailable() from exc
        except _Transient as exc:
            raise errors.StoreBusy() from exc
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    def read(self, work: Callable[[Connection], T]) -> T:
        try:
            return self._read(work)
        except _StaleConnection:
            try:
                return self._read(work)
            except _Transient as exc:
                raise errors.StoreUnavailable() from exc
        except _Transient as exc:
            raise errors.StoreBusy() from exc

    def _read(self, work: Callable[[Connection], T]) -> T:
        with translate_errors(), self.engine.connect() as conn:
            return work(conn)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with translate_errors(), self._write_lock or nullcontext(), self.engine.connect() as conn:
            conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()
        if self.is_postgres:  # on SQLite it shares the pool just disposed
            self._autocommit_engine.dispose()
