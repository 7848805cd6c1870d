"""Fixtures shared by every test: fresh databases on SQLite and PostgreSQL, a store, an app, keys, a clock.

Every storage test takes the ``db_url`` fixture, which is parametrised over both databases. Each run migrates
one template database per backend with the real Alembic migrations; each test then gets its own copy (a file
copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), so tests never see each other's rows.

PostgreSQL is required: set CREDIT_GATEWAY_TEST_POSTGRES to an admin URL (default
postgresql://postgres@127.0.0.1:5432/test). It is never skipped silently.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from stdnum.cn import ric

from gateway import logs
from gateway.app import build_app
from gateway.clock import ManualClock
from gateway.settings import DeliverySettings, JobSettings, Settings
from outbox import migrate
from outbox.database import Database
from outbox.store import Store
from schemas import deadlines
from tests import live

for name in list(os.environ):  # the developer's shell must not leak configuration into tests
    if name.startswith("CREDIT_GATEWAY_") and name != "CREDIT_GATEWAY_TEST_POSTGRES":
        del os.environ[name]

PG_ADMIN = os.environ.get("CREDIT_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
RUN = uuid.uuid4().hex[:8]
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # 10:00 in Huaihua


def _pg_url(database: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{database}"


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"cgtest_{RUN}_template"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is needed for the storage tests and is not reachable at {PG_ADMIN}: {exc}. "
            "Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or point CREDIT_GATEWAY_TEST_POSTGRES at a server."
        ) from exc
    db = Database(_pg_url(name))
    migrate.upgrade(db)
    db.dispose()
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"cgtest_{RUN}_%",))
        for (db_name,) in rows.fetchall():
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    migrate.upgrade(db)
    db.dispose()
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"cgtest_{RUN}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    yield _pg_url(name)
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, for tests that are about PostgreSQL only (several processes)."""
    template = request.getfixturevalue("pg_template")
    name = f"cgtest_{RUN}_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    yield _pg_url(name)
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(db_url: str) -> Settings:
    # delivery is exercised by its own tests; API tests see deliveries as ingest left them
    return Settings(
        database_url=db_url,
        key_cache_seconds=0,
        delivery=DeliverySettings(in_serve=False),
        jobs=JobSettings(in_serve=False),
    )


@pytest.fixture
def store(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Store]:
    db = Database(settings.database_url, pool_size=8)
    store = Store(db, settings.targets.routes(), deadlines.from_settings(settings.deadlines).due_dates)
    yield store
    checked_out = db.engine.pool.checkedout()  # type: ignore[attr-defined]
    # whatever a test did through any path, the audit log it left is one unbroken hash chain
    verdict = None if request.node.get_closest_marker("tampers_audit") else store.verify_audit()
    db.dispose()
    assert checked_out == 0, "a test leaked database connections"
    assert verdict is None or verdict.intact, verdict.findings if verdict else None


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def base_url(settings: Settings, store: Store, clock: ManualClock) -> Iterator[str]:
    """A real gateway server on loopback, over this test's database."""
    with live.serve(build_app(settings, store=store, clock=clock)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


def _key(store: Store, name: str, role: str, kinds: tuple[str, ...] | None = None) -> str:
    key, _ = store.create_key(name=name, role=role, kinds=kinds, actor="test", now=NOW)
    return key


@pytest.fixture
def source_key(store: Store) -> str:
    return _key(store, "approval-system", "source")


@pytest.fixture
def operator_key(store: Store) -> str:
    return _key(store, "credit-office", "operator")


@pytest.fixture
def make_key(store: Store) -> Any:
    return lambda name, role, kinds=None: _key(store, name, role, kinds)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- no secret, key or ID number in any log line of the whole session -------------------------------------------

_LEAKS = {
    "an API key": re.compile(r"cgk_[A-Za-z0-9_-]{20,}"),
    "a bearer token": re.compile(r"(?i)bearer\s+(?!\[redacted\])[A-Za-z0-9_.~+/=-]{12,}"),
    "a target's secret": re.compile(
        "|".join(re.escape(s) for s in ("demo-national-secret", "demo-provincial-sm3-key", "demo-municipal-secret"))
        + "|demo-portal-token"
    ),
}
_ID_NUMBER = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")


def _resident_id(number: str) -> bool:
    """Shaped like a resident ID number: a birth date and the right check digit (the region is not checked)."""
    try:
        dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return ric.calc_check_digit(number[:17] + "0") == number[17].upper()


class _SessionLog(logging.Handler):
    """Every record logged in this process during the session, rendered as the gateway renders it (text and JSON
    lines, ``gateway.logs``); keeps only the lines that leak. What is judged is the output, so a test that logs an
    ID number on purpose (to see it masked) passes, and one whose output would show it does not."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.renderers = (logs.TextFormatter(), logs.JsonFormatter())
        self.leaks: list[str] = []
        self.seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1
        for renderer in self.renderers:
            try:
                line = renderer.format(record)
            except Exception:  # a record that cannot be rendered is no leak; the logging module reports it
                return
            found = [what for what, pattern in _LEAKS.items() if pattern.search(line)]
            found += ["an ID number" for m in _ID_NUMBER.finditer(line) if _resident_id(m.group(0))]
            if found:
                self.leaks.append(f"{', '.join(found)} in: {line[:300]}")


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs() -> Iterator[_SessionLog]:
    root = logging.getLogger()
    collector = _SessionLog()
    root.addHandler(collector)  # gateway.logs.configure keeps handlers it did not install
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)  # the access log and the other INFO lines are judged too
    yield collector
    root.removeHandler(collector)
    assert not collector.leaks, f"{len(collector.leaks)} log line(s) leak:\n" + "\n".join(collector.leaks[:20])
